"""Closed-form cycle counts of the accelerator (see :mod:`vq4all.hw.accelerator`): the one formula
that the RTL tests assert and the reports use."""

from __future__ import annotations

from vq4all.hw.accelerator import PIPELINE_DEPTH
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.mapping import LayerRun

__all__ = ["layer_cycles", "load_cycles", "utilization"]


def layer_cycles(params: AcceleratorParams, run: LayerRun) -> int:
    """Cycles of one layer run from its config beat to its last output beat, both included,
    with every input always valid and the output always ready.

    One cycle accepts the config; sram mode then writes K codewords, one per cycle; then the
    ``C * G * J`` index beats issue one per cycle with no bubble between blocks, groups or
    columns; the last one reaches the output register ``PIPELINE_DEPTH`` cycles later.
    """
    beats = run.columns * params.tiling(run.out_features, run.in_features).beats
    return 1 + load_cycles(params) + beats + PIPELINE_DEPTH


def load_cycles(params: AcceleratorParams) -> int:
    """The codebook load of one layer run: K codewords, one per cycle, in sram mode; none from
    a ROM."""
    return params.K if params.mode == "sram" else 0


def utilization(params: AcceleratorParams, run: LayerRun, cycles: int) -> float:
    """Useful MACs over the MAC slots of ``cycles``: ``macs / (L * D * cycles)``."""
    return run.macs / (params.L * params.D * cycles)
