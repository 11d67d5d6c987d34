"""Generate, lint, build and run the accelerator's Verilog in Verilator through cocotb.

Each (parameters, codebook) pair gets its own build directory, named by a hash of the
generated Verilog, so a rebuild happens only when the RTL really changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools.runner import get_results, get_runner

from golden.artifacts import Codebook, write_atomically
from hw.params import AcceleratorParams
from hw.verilog import MANIFEST_NAME, TOP_NAME, VERILOG_NAME, render_verilog
from sim.job import JOB_ENV, Job
from sim.toolchain import activate_verilator

__all__ = ["SimulationFailed", "Simulator", "lint_verilog", "write_verilog"]

WAIVERS = Path(__file__).with_name("verilator.vlt")
TEST_MODULE = "sim.cocotb_accelerator"


class SimulationFailed(AssertionError):
    """A cocotb test failed or errored; the message names the results file."""


def write_verilog(
    params: AcceleratorParams, out_dir: str | os.PathLike, codebook: Codebook | None = None
) -> Path:
    """Write the Verilog and its manifest into ``out_dir`` (each file atomically); return the
    Verilog's path. ``codebook`` is the ROM content in rom mode and unused in sram mode."""
    files = _render(params, codebook)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_atomically(out / name, text.encode())
    return out / VERILOG_NAME


def _render(params: AcceleratorParams, codebook: Codebook | None) -> dict[str, str]:
    rom = params.mode == "rom"
    if rom and codebook is None:
        raise ValueError("rom mode needs a codebook")
    return render_verilog(params, codebook.codewords if rom else None, codebook.sha256 if rom else None)


def lint_verilog(verilog: str | os.PathLike) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` with the listed waivers; raise ``AssertionError`` with
    Verilator's report if it finds anything."""
    verilator = activate_verilator()
    result = subprocess.run(
        [str(verilator.executable), "--lint-only", "-Wall", "--top-module", TOP_NAME, str(WAIVERS), str(verilog)],
        capture_output=True,
        text=True,
        env=verilator.environment(),
        timeout=600,
    )
    if result.returncode != 0:
        raise AssertionError(f"verilator --lint-only -Wall failed on {verilog}:\n{result.stderr}")
    return result


@dataclass
class Simulator:
    """A Verilated build of one accelerator configuration, ready to run cocotb jobs."""

    params: AcceleratorParams
    build_dir: Path

    @classmethod
    def build(
        cls,
        params: AcceleratorParams,
        codebook: Codebook | None,
        root: str | os.PathLike = "build/sim",
        waves: bool = False,
    ) -> Simulator:
        """Generate the Verilog and build it with Verilator (cached by the Verilog's hash)."""
        activate_verilator()
        files = _render(params, codebook)
        digest = hashlib.sha256(files[VERILOG_NAME].encode()).hexdigest()[:16]
        build_dir = Path(root).resolve() / f"{params.mode}-K{params.K}-D{params.D}-L{params.L}-{digest}"
        build_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = build_dir / name
            if not path.exists() or path.read_text() != text:
                write_atomically(path, text.encode())
        runner = get_runner("verilator")
        runner.build(
            sources=[WAIVERS, build_dir / VERILOG_NAME],
            hdl_toplevel=TOP_NAME,
            build_dir=build_dir,
            build_args=["-O3", "--x-assign", "fast", "--x-initial", "fast"],
            timescale=("1ns", "1ps"),
            waves=waves,
            log_file=build_dir / "build.log",
        )
        return cls(params, build_dir)

    @property
    def manifest(self) -> dict:
        return json.loads((self.build_dir / MANIFEST_NAME).read_text())

    def run(
        self, job: Job, job_path: str | os.PathLike, test_filter: str | None = None, waves: bool = False
    ) -> Path:
        """Run the cocotb tests (those matching the regex ``test_filter``, or all) on ``job``,
        saved to ``job_path``; return the results XML.

        Raises :class:`SimulationFailed` if any test failed.
        """
        activate_verilator()
        job.save(job_path)
        Path(job.results_dir).mkdir(parents=True, exist_ok=True)
        runner = get_runner("verilator")
        results = runner.test(
            test_module=TEST_MODULE,
            hdl_toplevel=TOP_NAME,
            hdl_toplevel_lang="verilog",
            test_filter=test_filter,
            build_dir=self.build_dir,
            test_dir=job.results_dir,
            extra_env={JOB_ENV: str(Path(job_path).resolve())},
            seed=job.seed,
            waves=waves,
            log_file=Path(job.results_dir) / "sim.log",
        )
        tests, failed = get_results(results)
        if failed or not tests:
            raise SimulationFailed(f"{failed} of {tests} cocotb tests failed: see {results} and sim.log beside it")
        return results

    def run_layers(
        self, job: Job, job_path: str | os.PathLike, idle: bool = False, backpressure: bool = False
    ) -> list[dict]:
        """Run every case of ``job`` once, with the given stalls; return the measured rows
        (layer, M, N, match, cycles, model_cycles, utilization, sim_cycles, wall_s)."""
        name = f"layers_idle{int(idle)}_backpressure{int(backpressure)}"
        self.run(job, job_path, test_filter=f"layers_match_golden/idle={idle}/backpressure={backpressure}$")
        return json.loads((Path(job.results_dir) / f"{name}.json").read_text())
