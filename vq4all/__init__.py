"""VQ4ALL: one universal codebook for many networks, and the accelerator that keeps it in ROM.

The public API is :func:`compress`, :func:`export`, :func:`save`, :func:`load` and
:func:`save_program` (see :mod:`vq4all.api`); the command
line is ``vq4all`` (:mod:`vq4all.cli`). The parts are subpackages: :mod:`vq4all.golden` (the
contract and the artifacts), :mod:`vq4all.hw` (the accelerator), :mod:`vq4all.sim`
(simulation, cycles and energy) and :mod:`vq4all.model` (the method in PyTorch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vq4all.api import Report, Result, compress, export, load, save, save_program

__all__ = ["Report", "Result", "compress", "export", "load", "save", "save_program"]


def __getattr__(name: str) -> Any:
    # The API needs torch; importing it lazily keeps `import vq4all.hw` (Amaranth only) and the
    # other torch-free parts light.
    if name in __all__:
        return getattr(importlib.import_module("vq4all.api"), name)
    raise AttributeError(f"module 'vq4all' has no attribute {name!r}")
