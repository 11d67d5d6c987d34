"""VQ4ALL: one universal codebook for many networks, and the accelerator that keeps it in ROM.

The public API is :func:`compress` and :func:`export` (see :mod:`vq4all.api`); the command
line is ``vq4all`` (:mod:`vq4all.cli`).
"""

from vq4all.api import Report, Result, compress, export

__all__ = ["Report", "Result", "compress", "export"]
