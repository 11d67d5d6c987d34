"""Generate, lint, build and run the accelerator's Verilog in Verilator through cocotb.

Each (parameters, codebook) pair gets its own build directory, named by a hash of the
generated Verilog, so a rebuild happens only when the RTL really changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from cocotb_tools.runner import get_results, get_runner

from vq4all.golden.codebook import Codebook
from vq4all.golden.errors import InputError
from vq4all.golden.fileio import make_directory, write_atomically
from vq4all.hw.params import AcceleratorParams
from vq4all.hw.verilog import TOP_NAME, VERILOG_NAME, render_verilog
from vq4all.sim.rtl.job import JOB_ENV, Job
from vq4all.sim.rtl.toolchain import activate_verilator

__all__ = [
    "LintError",
    "SimulationError",
    "Simulator",
    "design_directory",
    "lint_verilog",
    "write_verilog",
]

WAIVERS = Path(__file__).with_name("verilator.vlt")
TEST_MODULE = "vq4all.sim.rtl.cocotb_accelerator"
#: cocotb rewrites the assertions of every imported module by default ("*.py"), torch's
#: included, which quadruples the simulator's start-up; only the test module needs it.
REWRITE_ASSERTIONS = {"COCOTB_REWRITE_ASSERTION_FILES": "cocotb_accelerator.py"}


class SimulationError(Exception):
    """The simulation failed: a build, a hang, a crash, or a check that the RTL did not pass
    (a cocotb test, an output against golden, the cycles against the model); the message says
    which and where to look."""


class LintError(Exception):
    """``verilator --lint-only -Wall`` found problems; the message starts with the first."""


def write_verilog(
    params: AcceleratorParams,
    out_dir: str | os.PathLike,
    codebook: Codebook | None = None,
    lint: bool = False,
) -> Path:
    """Write the Verilog and its manifest into ``out_dir`` (each file atomically); return the
    Verilog's path. ``codebook`` is the ROM content in rom mode and unused in sram mode.

    With ``lint`` the Verilog is linted first (:func:`lint_verilog`), in a scratch directory,
    so that Verilog that fails lint is never written.
    """
    files = _render(params, codebook)
    if lint:
        with tempfile.TemporaryDirectory(prefix="vq4all-lint-") as scratch:
            verilog = Path(scratch) / VERILOG_NAME
            verilog.write_text(files[VERILOG_NAME])
            lint_verilog(verilog)
    out = make_directory(out_dir)
    for name, text in files.items():
        write_atomically(out / name, text.encode())
    return out / VERILOG_NAME


def _waves_requested() -> bool:
    return os.environ.get("WAVES") == "1"


def _raise_on_failures(results: Path) -> None:
    if not results.exists():
        raise SimulationError(f"the simulator wrote no results: see {results.with_name('sim.log')}")
    tests, failed = get_results(results)
    if tests == 0:
        raise SimulationError(f"no cocotb test ran: see {results.with_name('sim.log')}")
    if failed:
        failures = ElementTree.parse(results).getroot().iter("failure")
        first = next((f.get("message") or f.text or "" for f in failures), "").strip()
        reason = first.splitlines()[0] if first else "no message"
        raise SimulationError(
            f"{failed} of {tests} cocotb tests failed ({reason}): "
            f"see {results.with_name('sim.log')}"
        )


def _render(params: AcceleratorParams, codebook: Codebook | None) -> dict[str, str]:
    rom = params.mode == "rom"
    if rom and codebook is None:
        raise InputError("rom mode needs a codebook")
    return render_verilog(
        params, codebook.codewords if rom else None, codebook.sha256 if rom else None
    )


def design_directory(
    params: AcceleratorParams, codebook: Codebook | None, root: str | os.PathLike, tag: str = ""
) -> Path:
    """``root/<mode>-K-D-L-<hash of the Verilog><tag>``, holding the generated Verilog and its
    manifest (rewritten only when they changed): where the builds of one design go."""
    files = _render(params, codebook)
    digest = hashlib.sha256(files[VERILOG_NAME].encode()).hexdigest()[:16]
    directory = make_directory(
        Path(root).resolve() / f"{params.mode}-K{params.K}-D{params.D}-L{params.L}-{digest}{tag}"
    )
    for name, text in files.items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            write_atomically(path, text.encode())
    return directory


def lint_verilog(verilog: str | os.PathLike) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` with the listed waivers; raise :class:`LintError` with
    Verilator's first finding and how many there are if it finds anything."""
    verilator = activate_verilator()
    result = subprocess.run(
        [
            str(verilator.executable),
            "--lint-only",
            "-Wall",
            "--top-module",
            TOP_NAME,
            str(WAIVERS),
            str(verilog),
        ],
        capture_output=True,
        text=True,
        env=verilator.environment(),
        timeout=600,
    )
    if result.returncode != 0:
        findings = [line for line in result.stderr.splitlines() if line.startswith("%")]
        first = findings[0] if findings else result.stderr.strip()
        raise LintError(
            f"verilator --lint-only -Wall: {len(findings)} finding(s) in the generated Verilog, "
            f"the first: {first}"
        )
    return result


@dataclass
class Simulator:
    """A Verilated build of one accelerator configuration, ready to run cocotb jobs."""

    params: AcceleratorParams
    build_dir: Path
    waves: bool = False

    @classmethod
    def build(
        cls,
        params: AcceleratorParams,
        codebook: Codebook | None,
        root: str | os.PathLike = "build/sim",
        waves: bool = False,
    ) -> Simulator:
        """Generate the Verilog and build it with Verilator (cached by the Verilog's hash).
        ``waves`` (or ``WAVES=1`` in the environment) builds with tracing."""
        activate_verilator()
        waves = waves or _waves_requested()
        build_dir = design_directory(params, codebook, root, "-waves" if waves else "")
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
        return cls(params, build_dir, waves)

    def run(self, job: Job, job_path: str | os.PathLike, test_filter: str) -> Path:
        """Run the cocotb tests matching the regex ``test_filter`` on ``job``, saved to
        ``job_path``; return the results XML. A build with waves writes ``dump.vcd`` into the
        results directory.

        Raises :class:`SimulationError` if any test failed.
        """
        activate_verilator()
        make_directory(job.results_dir)
        job.save(job_path)
        runner = get_runner("verilator")
        results = Path(job.results_dir) / "results.xml"
        # A crash writes no results: a previous run's file must not stand in for them.
        results.unlink(missing_ok=True)
        try:
            runner.test(
                test_module=TEST_MODULE,
                hdl_toplevel=TOP_NAME,
                hdl_toplevel_lang="verilog",
                test_filter=test_filter,
                build_dir=self.build_dir,
                test_dir=job.results_dir,
                results_xml=str(results.resolve()),
                extra_env={JOB_ENV: str(Path(job_path).resolve()), **REWRITE_ASSERTIONS},
                seed=job.seed,
                waves=self.waves,
                log_file=Path(job.results_dir) / "sim.log",
            )
        except SystemExit:
            # cocotb's runner exits the process when a test fails under pytest or the simulator
            # crashes; the results file below says which.
            pass
        _raise_on_failures(results)
        return results

    def run_layers(
        self, job: Job, job_path: str | os.PathLike, idle: bool = False, backpressure: bool = False
    ) -> list[dict]:
        """Run every case of ``job`` once, with the given stalls; return the measured rows
        (layer, M, N, match, cycles, model_cycles, utilization, sim_cycles, wall_s)."""
        name = f"layers_idle{int(idle)}_backpressure{int(backpressure)}"
        self.run(
            job,
            job_path,
            test_filter=f"layers_match_golden/idle={idle}/backpressure={backpressure}$",
        )
        return json.loads((Path(job.results_dir) / f"{name}.json").read_text())
