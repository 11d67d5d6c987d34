"""Closed-form cycle counts of the accelerator (see :mod:`vq4all.hw.accelerator`): the one formula
that the RTL tests assert and the reports use."""

from __future__ import annotations

from vq4all.hw.accelerator import PIPELINE_DEPTH
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.mapping import LayerRun

__all__ = ["layer_cycles", "load_cycles", "utilization", "utilization_by_kind"]


def layer_cycles(params: AcceleratorParams, run: LayerRun) -> int:
    """Cycles of one layer run from its config beat to its last output beat, both included,
    with every input always valid and the output always ready.

    One cycle accepts the config; sram mode then writes the layer's codewords, one per cycle
    (:func:`load_cycles`); then the index beats of its tiling issue one per cycle with no
    bubble between steps, groups or units; the last one's first output beat comes
    ``PIPELINE_DEPTH`` cycles later, and a packed group's other D - 1 columns follow it.
    """
    tiling = run.tiling(params)
    return 1 + load_cycles(params, run) + tiling.beats + PIPELINE_DEPTH + tiling.outputs - 1


def load_cycles(params: AcceleratorParams, run: LayerRun | None = None) -> int:
    """The codebook load before a layer run: in sram mode, one cycle per codeword of the run's
    codebook (``run.codebook_entries``; the accelerator's K for no run, or for a run of the
    whole universal codebook); none from a ROM."""
    if params.mode != "sram":
        return 0
    entries = run.codebook_entries if run is not None else None
    return entries if entries is not None else params.K


def utilization(params: AcceleratorParams, run: LayerRun, cycles: int) -> float:
    """Useful MACs over the MAC slots of ``cycles``: ``macs / (L * D * cycles)``."""
    return run.macs / (params.L * params.D * cycles)


def utilization_by_kind(params: AcceleratorParams, runs: list[LayerRun]) -> dict[str, float]:
    """The utilization of the layer runs of each :attr:`LayerRun.kind`, over all their cycles,
    and of all of ``runs`` together (``"network"``)."""
    totals: dict[str, list[int]] = {}
    for run in runs:
        macs, cycles = totals.setdefault(run.kind, [0, 0])
        totals[run.kind] = [macs + run.macs, cycles + layer_cycles(params, run)]
    totals["network"] = [sum(column) for column in zip(*totals.values(), strict=True)]
    return {kind: macs / (params.L * params.D * cycles) for kind, (macs, cycles) in totals.items()}
