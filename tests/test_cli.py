"""The command line: each subcommand end to end, and one readable line for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import vq4all.sim.rtl.build
from tests.files import edit_as_another_tool, flip_bit
from tests.programs import write_digits_program
from vq4all.cli import main
from vq4all.golden.codebook import load_codebook
from vq4all.golden.network import load_network


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vq4all.cli", *args], capture_output=True, text=True
    )


def _one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vq4all")
    assert "error: " in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


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


@pytest.fixture
def digits_program(tmp_path, seed):
    return write_digits_program(tmp_path, seed)


def test_help_lists_the_subcommands() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    for command in ("rtl", "simulate", "random-codebook", "random-layer", "demo"):
        assert command in result.stdout


@pytest.mark.verilator
def test_rtl_writes_lint_clean_verilog(artifacts) -> None:
    args = ["--codebook", str(artifacts / "cb.safetensors"), "--L", "2"]
    assert main(["rtl", *args, "-o", str(artifacts / "rtl"), "--lint"]) == 0
    assert (artifacts / "rtl" / "vq4all_accel.v").exists()
    assert (artifacts / "rtl" / "manifest.json").exists()


@pytest.mark.verilator
def test_rtl_lint_failure_is_one_line_and_writes_nothing(artifacts, monkeypatch, capsys) -> None:
    """Without its waivers the generated Verilog fails ``-Wall``: the command says so in one
    line and leaves no Verilog behind."""
    empty = artifacts / "no-waivers.vlt"
    empty.write_text("`verilator_config\n")
    monkeypatch.setattr(vq4all.sim.rtl.build, "WAIVERS", empty)
    args = ["rtl", "--codebook", str(artifacts / "cb.safetensors"), "-o", str(artifacts / "rtl")]
    assert main([*args, "--lint"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("vq4all: error: verilator --lint-only -Wall: ")
    assert "finding(s) in the generated Verilog, the first: %Warning-" in line
    assert not (artifacts / "rtl").exists()


@pytest.mark.verilator
@pytest.mark.slow
def test_simulate_runs_a_layer_bit_exactly(artifacts, capsys) -> None:
    code = main([*_simulate_args(artifacts), "--idle", "--backpressure"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[rom] layer: 9x70" in out and "bit-exact: yes" in out


@pytest.mark.verilator
@pytest.mark.slow
def test_simulate_runs_a_network_program(digits_program, tmp_path, capsys) -> None:
    out_dir = tmp_path / "run"
    args = ["simulate", "--network", str(digits_program), "--images", "3", "-o", str(out_dir)]
    assert main([*args, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "images bit-exact 3/3" in out
    report = json.loads((out_dir / "report.json").read_text())
    assert report["codebook_sha256"] == load_codebook(tmp_path / "codebook.safetensors").sha256
    assert report["params"]["max_inputs"] == 64 and report["params"]["max_outputs"] == 24
    header = (out_dir / "report.csv").read_text().splitlines()[0]
    assert header == "name,kind,shape,groups,columns,cycles,model_cycles,utilization,bit_exact"


def test_corrupted_codebook(artifacts) -> None:
    path = artifacts / "cb.safetensors"
    flip_bit(path, 1)
    result = _cli("rtl", "--codebook", str(path), "-o", str(artifacts / "rtl"))
    _one_error_line(result, str(path), "field 'payload_sha256'", "corrupted")
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


def test_network_of_another_codebook(digits_program, tmp_path) -> None:
    """Refused before anything is built, naming both hashes."""
    _random_codebook(tmp_path / "other.safetensors", seed=6)
    program_hash = load_codebook(tmp_path / "codebook.safetensors").sha256
    rom_hash = load_codebook(tmp_path / "other.safetensors").sha256
    args = ["--codebook", str(tmp_path / "other.safetensors"), "-o", str(tmp_path / "run")]
    result = _cli("simulate", "--network", str(digits_program), *args)
    _one_error_line(result, "field 'codebook_sha256'", program_hash, rom_hash, "ROM holds")
    assert not (tmp_path / "run").exists()


def test_network_layer_larger_than_the_accelerator(digits_program, tmp_path) -> None:
    args = ["--max-inputs", "32", "-o", str(tmp_path / "run")]
    result = _cli("simulate", "--network", str(digits_program), *args)
    _one_error_line(result, "layer 'hidden' (layers[0])", "N=64 inputs exceed max_inputs=32")
    result = _cli("simulate", "--network", str(digits_program), "--max-outputs", "16")
    _one_error_line(result, "layer 'hidden'", "M=24 outputs exceed max_outputs=16")
    assert not (tmp_path / "run").exists()


def test_network_file_with_a_missing_op_field(digits_program) -> None:
    def drop_layer_index(metadata: dict) -> None:
        graph = json.loads(metadata["graph"])
        del graph[2]["layer"]
        metadata["graph"] = json.dumps(graph)

    edit_as_another_tool(digits_program, drop_layer_index)
    result = _cli("simulate", "--network", str(digits_program))
    _one_error_line(result, str(digits_program), "field 'graph[2].layer' is missing")


def test_truncated_network_file(digits_program) -> None:
    digits_program.write_bytes(digits_program.read_bytes()[:-50])
    result = _cli("simulate", "--network", str(digits_program))
    _one_error_line(result, str(digits_program), "not a readable safetensors file")


def test_network_without_its_codebook_beside_it(digits_program, tmp_path) -> None:
    (tmp_path / "codebook.safetensors").unlink()
    result = _cli("simulate", "--network", str(digits_program))
    _one_error_line(result, "no codebook with sha256", "give it with --codebook")


def test_image_out_of_range(digits_program) -> None:
    result = _cli("simulate", "--network", str(digits_program), "--image", "497")
    _one_error_line(result, "--image 497: digits has test images 0..496")


def test_layers_or_network_not_both(digits_program, artifacts) -> None:
    result = _cli(
        "simulate", str(artifacts / "layer.safetensors"), "--network", str(digits_program)
    )
    _one_error_line(result, "simulate takes layer programs or --network PROGRAM")


def test_parameters_that_contradict_the_codebook(artifacts) -> None:
    codebook = str(artifacts / "cb.safetensors")
    result = _cli("rtl", "--codebook", codebook, "--D", "4", "-o", str(artifacts / "rtl"))
    _one_error_line(result, "--D 4 does not match the codebook's D=8")
    result = _cli("rtl", "--codebook", codebook, "--L", "0", "-o", str(artifacts / "rtl"))
    _one_error_line(result, "argument --L: 0 is not a positive integer")


def test_layer_larger_than_the_accelerator(artifacts) -> None:
    result = _cli(*_simulate_args(artifacts), "--max-inputs", "64")
    _one_error_line(result, "field 'in_features': N=70 inputs exceed max_inputs=64")


def test_missing_inputs(artifacts) -> None:
    (artifacts / "layer.npy").unlink()
    result = _cli(*_simulate_args(artifacts))
    _one_error_line(result, "layer.npy: the inputs of", "missing")


def test_missing_layer_file_is_named(artifacts) -> None:
    (artifacts / "layer.safetensors").unlink()
    (artifacts / "layer.npy").unlink()
    result = _cli(*_simulate_args(artifacts))
    _one_error_line(result, "layer.safetensors: the layer program is missing")


def test_parameters_are_named_by_their_flag(artifacts) -> None:
    result = _cli("random-codebook", "--K", "1000", "-o", str(artifacts / "x.safetensors"))
    _one_error_line(result, "argument --K: 1000 is not a power of two")
    layer = ["random-layer", "--codebook", str(artifacts / "cb.safetensors"), "--N", "8"]
    result = _cli(*layer, "--M", "0", "-o", str(artifacts / "x.safetensors"))
    _one_error_line(result, "argument --M: 0 is not a positive integer")
    assert not (artifacts / "x.safetensors").exists()


def test_output_paths_that_cannot_be_written(artifacts) -> None:
    """A directory where a file goes, a file where a directory goes, a missing directory: one
    line naming the path, nothing written."""
    codebook = str(artifacts / "cb.safetensors")
    result = _cli("random-codebook", "--K", "256", "-o", str(artifacts))
    _one_error_line(result, f"{artifacts}: is a directory, not a file name")
    result = _cli("rtl", "--codebook", codebook, "-o", codebook)
    _one_error_line(result, f"{codebook}: exists and is not a directory")
    result = _cli(*_simulate_args(artifacts)[:-1], codebook)
    _one_error_line(result, f"{codebook}: exists and is not a directory")
    missing = artifacts / "nowhere" / "cb.safetensors"
    result = _cli("random-codebook", "--K", "256", "-o", str(missing))
    _one_error_line(result, f"{artifacts / 'nowhere'}: the output directory does not exist")
    assert sorted(p.name for p in artifacts.iterdir()) == [
        "cb.safetensors",
        "layer.npy",
        "layer.safetensors",
    ]


@pytest.mark.verilator
@pytest.mark.slow
def test_demo_end_to_end(tmp_path, monkeypatch, capsys) -> None:
    """The main job on a small codebook: zoo, codebook, compression of a network that was not a
    source, export, test images through the RTL in rom mode, the baselines, per-layer VQ
    through the RTL in sram mode, and the energy answer beside the accuracies."""
    monkeypatch.setenv("VQ4ALL_CACHE", str(tmp_path / "cache"))
    args = ["demo", "-o", str(tmp_path), "--K", "256", "--images", "3", "--sram-images", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "VQ4ALL compression of dscnn, not a source of the codebook" in out
    assert "images bit-exact 3/3" in out and "images bit-exact 2/2" in out
    rom = json.loads((tmp_path / "rom" / "report.json").read_text())
    sram = json.loads((tmp_path / "sram" / "report.json").read_text())
    program = load_network(tmp_path / "dscnn-perlayer-trained.safetensors")
    # Four layers, each loading its own codebook in sram mode.
    own = sum(codebook.K for codebook in program.codebooks)
    assert sram["cycles_per_image"] - rom["cycles_per_image"] == own
    assert f"per-layer VQ {sram['cycles_per_image']:,}" in out
    energy = json.loads((tmp_path / "energy" / "energy.json").read_text())
    dscnn = [entry for entry in energy["answer"] if entry["network"] == "dscnn"]
    methods = {(entry["method"], entry["architecture"]) for entry in dscnn}
    assert methods == {
        ("uniform8", "int8"),
        ("uniform4", "int4"),
        ("kmeans", "sram_per_layer"),
        ("perlayer-trained", "sram_per_layer"),
        ("vq4all", "rom"),
        ("vq4all", "sram_universal"),
        ("vq4all", "sram_per_layer_full"),
    }
    assert all(entry["accuracy"] is not None for entry in dscnn)
    assert "a labelled extreme" in out


@pytest.mark.slow
def test_codebook_compress_export_on_digits(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VQ4ALL_CACHE", str(tmp_path / "cache"))
    codebook, checkpoint, network = (tmp_path / name for name in ("cb.st", "c.st", "n.st"))
    args = ["--sources", "mlp,cnn", "--K", "4096", "--weighting", "size", "-o", str(codebook)]
    assert main(["codebook", *args]) == 0
    assert load_codebook(codebook).provenance["weighting"] == "size"
    args = ["--codebook", str(codebook), "--network", "rescnn", "-o", str(checkpoint)]
    assert main(["compress", *args]) == 0
    args = ["--codebook", str(codebook), "--compressed", str(checkpoint), "-o", str(network)]
    assert main(["export", *args]) == 0
    out = capsys.readouterr().out
    assert "from mlp, cnn" in out
    assert "rescnn on digits" in out and "frozen by PNC" in out
    assert "accuracy float" in out and "-> VQ4ALL" in out
    assert "golden integer on 497 digits test images: accuracy" in out
    assert "agreement with the float VQ model" in out


def test_compress_with_a_corrupted_codebook(artifacts) -> None:
    path = artifacts / "cb.safetensors"
    flip_bit(path, 9)
    result = _cli("compress", "--codebook", str(path), "-o", str(artifacts / "c.st"))
    _one_error_line(result, str(path), "field 'payload_sha256'")
    assert not (artifacts / "c.st").exists()


def test_unknown_zoo_network(artifacts) -> None:
    result = _cli("compress", "--codebook", str(artifacts / "cb.safetensors"), "--network", "vgg")
    _one_error_line(result, "no network 'vgg' in the zoo")


def test_random_codebook_is_reproducible(tmp_path) -> None:
    for name in ("a", "b"):
        _random_codebook(tmp_path / f"{name}.safetensors", seed=3)
    first, second = (load_codebook(tmp_path / f"{n}.safetensors") for n in "ab")
    assert first.sha256 == second.sha256
    assert np.array_equal(first.codewords, second.codewords)


def test_a_bug_keeps_its_traceback_and_bad_input_is_one_line(tmp_path, monkeypatch, capsys):
    """Only the errors a user can cause or fix are one line with exit code 2: a ValueError from
    inside the project (a bug, not a check of the input) propagates with its traceback."""
    import vq4all.cli.hardware

    def bug(args):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(vq4all.cli.hardware, "random_codebook", lambda *args: bug(args))
    with pytest.raises(ValueError, match="internal invariant"):
        main(["random-codebook", "--K", "256", "-o", str(tmp_path / "cb.safetensors")])
    monkeypatch.undo()
    assert main(["random-codebook", "--K", "256", "--D", "8", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_compression_flags_are_checked_before_anything_runs(tmp_path) -> None:
    for flag, value, message in (
        ("--candidates", "0", "candidates must be a positive integer, not 0"),
        ("--lr", "nan", "lr must be a positive number, not nan"),
        ("--threshold", "1.5", "threshold must be in (0, 1], not 1.5"),
    ):
        out = tmp_path / "c.safetensors"
        _one_error_line(_cli("compress", flag, value, "-o", str(out)), message)
        assert not out.exists()


def test_per_layer_programs_and_energy_flags_refused_in_one_line(tmp_path) -> None:
    """A per-layer VQ program needs sram mode and no universal codebook; the energy model's
    sizes and accuracy file are checked before anything is written."""
    own = write_digits_program(tmp_path, seed=3, name="own", per_layer=(7, 20))
    out = tmp_path / "out"
    result = _cli("simulate", "--network", str(own), "-o", str(out))
    _one_error_line(result, str(own), "field 'codebook_scales'", "--mode sram")
    codebook = tmp_path / "cb.safetensors"
    _random_codebook(codebook, seed=3)
    args = ["--network", str(own), "--mode", "sram", "--codebook", str(codebook)]
    result = _cli("simulate", *args, "-o", str(out))
    _one_error_line(result, f"--codebook {codebook}", "carries its layers' own codebooks")
    program = write_digits_program(tmp_path, seed=3)
    for flags, fragment in (
        (["--weight-sram", "-1"], "argument --weight-sram: '-1' is not a size in KiB"),
        (["--act-buffer", "nan"], "argument --act-buffer: 'nan' is not a size in KiB"),
        (["--dataflow", "tiles"], "argument --dataflow: invalid choice: 'tiles'"),
        (["--accuracy", str(codebook)], f"{codebook}: not JSON"),
        ([str(own), "--accuracy", str(tmp_path / "no.json")], "no.json"),
    ):
        result = _cli("energy", str(program), *flags, "-o", str(out))
        _one_error_line(result, fragment)
    (tmp_path / "bad.json").write_text('{"network": {"vq4all": "high"}}')
    result = _cli("energy", str(program), "--accuracy", str(tmp_path / "bad.json"), "-o", str(out))
    _one_error_line(result, "field 'network.vq4all': 'high' is not a number")
    assert not out.exists()
