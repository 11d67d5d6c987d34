"""Closed-form cycle counts of the accelerator (see :mod:`hw.accelerator`)."""

from __future__ import annotations

from hw.accelerator import PIPELINE_DEPTH
from hw.params import AcceleratorParams

__all__ = ["layer_cycles", "utilization"]


def layer_cycles(params: AcceleratorParams, out_features: int, in_features: int) -> int:
    """Cycles of one layer run from its config beat to its last output beat, both included,
    with every input always valid and the output always ready.

    One cycle accepts the config; sram mode then writes K codewords, one per cycle; then the
    ``G * J`` index beats issue one per cycle with no bubble between groups; the last one
    reaches the output register ``PIPELINE_DEPTH`` cycles later.
    """
    groups = -(-out_features // params.L)
    blocks = -(-in_features // params.D)
    load = params.K if params.mode == "sram" else 0
    return 1 + load + groups * blocks + PIPELINE_DEPTH


def utilization(
    params: AcceleratorParams, out_features: int, in_features: int, cycles: int
) -> float:
    """Useful MACs over the MAC slots of ``cycles``: ``M * N / (L * D * cycles)``."""
    return out_features * in_features / (params.L * params.D * cycles)
