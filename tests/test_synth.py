"""``vq4all synth``: the real open FPGA flow (Yosys, nextpnr from YoWASP) on small
configurations, its report, and a design that does not fit."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from vq4all.golden.codebook import save_codebook
from vq4all.golden.synthetic import random_codebook

pytestmark = pytest.mark.slow

#: Small enough to run through the whole flow in a minute or two.
SMALL = ["--L", "2", "--max-inputs", "64", "--max-outputs", "8", "--max-columns", "16"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vq4all.cli", *args], capture_output=True, text=True
    )


def test_small_configuration_through_the_whole_flow(tmp_path) -> None:
    save_codebook(tmp_path / "cb.safetensors", codebook := random_codebook(256, 8, seed=3))
    out = tmp_path / "synth"
    args = ["synth", "--codebook", str(tmp_path / "cb.safetensors"), *SMALL, "--seeds", "2"]
    result = _cli(*args, "-o", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == "ecp5" and report["device"].startswith("LFE5U-85F")
    assert set(report["fmax_mhz"]) == {"clk"}
    per_seed = report["fmax_mhz_per_seed"]["clk"]
    assert len(per_seed) == report["seeds"] == 2
    assert min(per_seed) <= report["fmax_mhz"]["clk"] <= max(per_seed)
    assert report["fmax_mhz"]["clk"] > 50
    resources = report["resources"]
    assert {"TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D"} <= set(resources)
    assert all(0 < r["used"] <= r["available"] for r in resources.values())  # it fits
    path = report["critical_path"]
    assert path["from"] and path["to"]
    assert path["logic_ns"] + path["routing_ns"] == pytest.approx(path["delay_ns"], abs=0.01)
    # The slowest path bounds the clock: 1000 / delay is within setup time of Fmax.
    assert 1000 / path["delay_ns"] >= 0.8 * min(per_seed)
    assert report["params"] == {
        "K": 256,
        "D": 8,
        "L": 2,
        "max_inputs": 64,
        "max_outputs": 8,
        "max_columns": 16,
        "mode": "rom",
        "activation_bits": 8,
    }
    assert report["codebook_sha256"] == codebook.sha256
    assert report["tools"]["yosys"].startswith("Yosys") and "nextpnr" in report["tools"]["nextpnr"]
    assert "register chain" in report["design"]  # which top level the figures describe
    for log in ("yosys.log", "nextpnr-seed1.log", "nextpnr-seed2.log"):
        assert (out / log).stat().st_size > 0
    assert "Fmax (median of 2 seeds): clk" in result.stdout


def test_a_design_that_does_not_fit_names_the_resource(tmp_path) -> None:
    """A 4096-codeword ROM is 256 kbit; an iCE40UP5K has 120 kbit of block RAM."""
    out = tmp_path / "synth"
    result = _cli(
        "synth", "--target", "ice40", "--K", "4096", *SMALL, "--seeds", "1", "-o", str(out)
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "does not fit the iCE40UP5K" in lines[0]
    assert re.search(r"ICESTORM_RAM (\d+) used, 30 available", lines[0]), lines[0]
    assert "try a smaller K or L, or --mode sram" in lines[0]
    assert not (out / "report.json").exists()
