"""The benchmark scripts, run at a tiny size: they finish and write their JSON, so that a change
of the API they call cannot break ``make bench`` unseen. Their figures are the benchmarks'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(script: str, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.verilator
def test_the_rtl_benchmark_runs_and_writes_its_figures(tmp_path) -> None:
    _run(
        "bench_rtl.py",
        *("--K", "256", "--M", "16", "--N", "64", "--images", "2", "--cocotb-images", "1"),
        "--mobilenet-images",
        "1",
        # The synthesis at its one size takes a minute; tests/test_synth.py runs the flow.
        *("--epochs", "1", "--synth-seeds", "0", "--work", str(tmp_path)),
    )
    modes = json.loads((tmp_path / "bench_rtl.json").read_text())
    assert [row["mode"] for row in modes] == ["rom", "sram"]
    assert all(row["cycles"] == row["model_cycles"] for row in modes)
    network = json.loads((tmp_path / "rtl.json").read_text())
    assert network["images"] == network["images_bit_exact"] == 2
    mobilenet = json.loads((tmp_path / "mobilenet.json").read_text())
    assert mobilenet["images"] == mobilenet["images_bit_exact"] == 1


@pytest.mark.slow
def test_the_model_benchmark_runs_and_writes_its_table(tmp_path) -> None:
    _run(
        "bench_model.py",
        *("--skip-mobilenet", "--data", "digits", "--zoo", "mlp", "--K", "256"),
        *("--distill", "256", "--zoo-epochs", "1", "--work", str(tmp_path)),
    )
    rows = json.loads((tmp_path / "model.json").read_text())
    methods = [row["method"] for row in rows if row["network"] == "mlp"]
    assert methods == [
        "float",
        "vq4all",
        "vq4all-golden",
        "kmeans",
        "perlayer-trained",
        *map("uniform{}".format, (2, 4, 8)),
    ]
    assert all(0.0 <= row["value"] <= 100.0 for row in rows)
    assert (tmp_path / "universal_codebook.safetensors").is_file()
    assert not list(tmp_path.glob("*.resume"))  # each compression's state, removed when done
    energy = json.loads((tmp_path / "energy-mlp-lstp-decode_once" / "energy.json").read_text())
    trained = [e for e in energy["answer"] if e["method"] == "perlayer-trained"]
    assert [e["architecture"] for e in trained] == ["sram_per_layer"]
    assert trained[0]["accuracy"] == next(
        r["value"] for r in rows if r["method"] == "perlayer-trained"
    )
