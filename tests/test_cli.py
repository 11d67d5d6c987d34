"""The command line: each subcommand end to end, and one readable line for every bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.files import flip_bit
from vq4all.cli import main


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vq4all.cli", *args], capture_output=True, text=True
    )


def _simulate_args(artifacts) -> list[str]:
    codebook, layer = artifacts / "cb.safetensors", artifacts / "layer.safetensors"
    return [
        "simulate",
        "--codebook",
        str(codebook),
        str(layer),
        "--work-dir",
        str(artifacts / "work"),
    ]


def _random_codebook(path, seed: int) -> None:
    args = ["random-codebook", "--K", "256", "--D", "8", "--seed", str(seed), "-o", str(path)]
    assert main(args) == 0


@pytest.fixture
def artifacts(tmp_path):
    _random_codebook(tmp_path / "cb.safetensors", seed=5)
    codebook, layer = tmp_path / "cb.safetensors", tmp_path / "layer.safetensors"
    args = ["--codebook", str(codebook), "--M", "9", "--N", "70", "--relu", "-o", str(layer)]
    assert main(["random-layer", *args]) == 0
    return tmp_path


def test_help_lists_the_subcommands() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    for command in ("rtl", "simulate", "random-codebook", "random-layer", "demo"):
        assert command in result.stdout


@pytest.mark.verilator
def test_rtl_writes_lint_clean_verilog(artifacts) -> None:
    assert (
        main(
            [
                "rtl",
                "--codebook",
                str(artifacts / "cb.safetensors"),
                "--L",
                "2",
                "-o",
                str(artifacts / "rtl"),
                "--lint",
            ]
        )
        == 0
    )
    assert (artifacts / "rtl" / "vq4all_accel.v").exists()
    assert (artifacts / "rtl" / "manifest.json").exists()


@pytest.mark.verilator
@pytest.mark.slow
def test_simulate_runs_a_layer_bit_exactly(artifacts, capsys) -> None:
    code = main([*_simulate_args(artifacts), "--idle", "--backpressure"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[rom] layer: 9x70" in out and "bit-exact: yes" in out


def _one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vq4all: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_corrupted_codebook(artifacts) -> None:
    path = artifacts / "cb.safetensors"
    flip_bit(path, 1)
    result = _cli("rtl", "--codebook", str(path), "-o", str(artifacts / "rtl"))
    _one_error_line(result, str(path), "field 'sha256'", "corrupted")
    assert not (artifacts / "rtl").exists()


def test_layer_of_another_codebook(artifacts) -> None:
    _random_codebook(artifacts / "other.safetensors", seed=6)
    result = _cli(
        "simulate",
        "--codebook",
        str(artifacts / "other.safetensors"),
        str(artifacts / "layer.safetensors"),
    )
    _one_error_line(result, "layer.safetensors", "field 'codebook_sha256'")


def test_parameters_that_contradict_the_codebook(artifacts) -> None:
    result = _cli(
        "rtl",
        "--codebook",
        str(artifacts / "cb.safetensors"),
        "--D",
        "4",
        "-o",
        str(artifacts / "rtl"),
    )
    _one_error_line(result, "--D 4 does not match the codebook's D=8")
    result = _cli(
        "rtl",
        "--codebook",
        str(artifacts / "cb.safetensors"),
        "--L",
        "0",
        "-o",
        str(artifacts / "rtl"),
    )
    _one_error_line(result, "L must be a positive integer, not 0")


def test_layer_larger_than_the_accelerator(artifacts) -> None:
    result = _cli(*_simulate_args(artifacts), "--max-inputs", "64")
    _one_error_line(result, "field 'in_features': N=70 exceeds max_inputs=64")


def test_missing_inputs(artifacts) -> None:
    (artifacts / "layer.npy").unlink()
    result = _cli(
        "simulate",
        "--codebook",
        str(artifacts / "cb.safetensors"),
        str(artifacts / "layer.safetensors"),
    )
    _one_error_line(result, "layer.npy", "missing")


@pytest.mark.verilator
@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys) -> None:
    code = main(["demo", "-o", str(tmp_path), "--K", "256", "--M", "9", "--N", "70"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("bit-exact: yes") == 2
    assert "reloading the codebook into SRAM costs 256 cycles" in out
    assert (tmp_path / "rtl-rom" / "vq4all_accel.v").exists()


@pytest.mark.slow
def test_codebook_compress_export_on_digits(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VQ4ALL_CACHE", str(tmp_path / "cache"))
    codebook, checkpoint, network = (tmp_path / name for name in ("cb.st", "c.st", "n.st"))
    assert main(["codebook", "--sources", "mlp,cnn", "-o", str(codebook)]) == 0
    assert (
        main(
            ["compress", "--codebook", str(codebook), "--network", "rescnn", "-o", str(checkpoint)]
        )
        == 0
    )
    assert (
        main(
            [
                "export",
                "--codebook",
                str(codebook),
                "--compressed",
                str(checkpoint),
                "-o",
                str(network),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "from mlp, cnn" in out
    assert "rescnn on digits: float" in out and "frozen by PNC" in out
    assert "agreement with the float VQ model" in out


def test_compress_with_a_corrupted_codebook(artifacts) -> None:
    path = artifacts / "cb.safetensors"
    flip_bit(path, 9)
    result = _cli("compress", "--codebook", str(path), "-o", str(artifacts / "c.st"))
    _one_error_line(result, str(path), "field 'sha256'")
    assert not (artifacts / "c.st").exists()


def test_unknown_zoo_network(artifacts) -> None:
    result = _cli("compress", "--codebook", str(artifacts / "cb.safetensors"), "--network", "vgg")
    _one_error_line(result, "no network 'vgg' in the zoo")
