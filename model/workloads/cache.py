"""Where trained weights and extracted pictures are kept between runs: never committed."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$VQ4ALL_CACHE``, else ``~/.cache/vq4all``."""
    return Path(os.environ.get("VQ4ALL_CACHE", Path.home() / ".cache" / "vq4all"))
