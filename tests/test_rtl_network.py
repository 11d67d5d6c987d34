"""Whole compressed networks on the RTL: the index streams that VQ4ALL exported from real
networks, through Verilator (the C++ harness, and cocotb's per-cycle drivers with and without
stalls), bit-exact image by image, with the cycle model exact per layer in both codebook modes;
and what a mismatch tells the user."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader, TensorDataset

import vq4all
from tests.programs import write_digits_program, write_model_file
from vq4all.cli import main
from vq4all.flow import select_test_images
from vq4all.golden.codebook import save_codebook
from vq4all.golden.network import AddOp, load_network, save_network
from vq4all.golden.synthetic import random_codebook
from vq4all.model.baselines import kmeans_codebooks
from vq4all.model.export import export_network
from vq4all.model.vq import frozen_at_nearest
from vq4all.sim.arch.cycles import layer_cycles
from vq4all.sim.arch.mapping import network_runs
from vq4all.sim.energy.model import (
    Program,
    architecture_named,
    inference_activity,
    memories_for,
)
from vq4all.sim.energy.tables import load_table
from vq4all.sim.rtl import network as sim_network
from vq4all.sim.rtl.network import (
    CycleModelError,
    MismatchError,
    NetworkSimulation,
    accelerator_for,
    check_cycles,
    simulate_network,
)

pytestmark = [pytest.mark.verilator, pytest.mark.slow]

BUILD_ROOT = Path(__file__).resolve().parents[1] / "build" / "sim"
#: dscnn has a depthwise convolution, rescnn a residual add; neither is a codebook source.
NETWORKS = ("dscnn", "rescnn")
#: Runs of each network: (codebook mode, driver, stalls) -> test images. Without stalls every
#: layer run must take the model's cycles, whichever driver ran it.
RUNS = {
    ("rom", "harness", False): 20,
    ("sram", "harness", False): 5,
    ("rom", "cocotb", False): 3,
    ("rom", "cocotb", True): 3,
}
#: One accelerator for both networks, so that each codebook mode is built once.
LIMITS = {"max_inputs": 1024, "max_outputs": 256, "max_columns": 1024}


@pytest.fixture(scope="module")
def programs(compressed_zoo, universal, digits, tmp_path_factory) -> dict[str, Path]:
    """The exported programs of the compressed networks, beside their codebook."""
    directory = tmp_path_factory.mktemp("programs")
    save_codebook(directory / "codebook.safetensors", universal)
    paths = {}
    for name in NETWORKS:
        model = compressed_zoo(name).model
        program = export_network(model, universal, digits.calibration(), digits.name)
        paths[name] = directory / f"{name}.safetensors"
        save_network(paths[name], program)
    return paths


@pytest.fixture(scope="module")
def measured_runs(programs, tmp_path_factory) -> dict[tuple, tuple]:
    """(program, report, what the simulator measured) of every network in every run of
    :data:`RUNS`, keyed by (network, mode, driver, stalls)."""
    measured = {}
    for name in NETWORKS:
        program = load_network(programs[name])
        for (mode, driver, stalls), count in RUNS.items():
            out_dir = tmp_path_factory.mktemp(f"{name}-{mode}-{driver}")
            simulation = NetworkSimulation(
                programs[name],
                out_dir,
                mode=mode,
                build_root=BUILD_ROOT,
                cocotb=driver == "cocotb",
                idle=stalls,
                backpressure=stalls,
                **LIMITS,
            )
            assert simulation.driver == driver
            images = select_test_images(program, count=count)
            report = simulate_network(simulation, images, progress=False)
            result = json.loads((out_dir / "results" / "network.json").read_text())
            measured[name, mode, driver, stalls] = program, report, result
    return measured


def _without_stalls(measured_runs) -> dict[tuple, tuple]:
    return {key: run for key, run in measured_runs.items() if not key[3]}


def test_the_networks_cover_depthwise_and_residual_layers(programs) -> None:
    dscnn, rescnn = (load_network(programs[name]) for name in NETWORKS)
    assert any(run.conv_groups > 1 and run.out_features == 1 for run in network_runs(dscnn))
    assert any(isinstance(op, AddOp) for op in rescnn.graph)


def test_real_test_images_run_bit_exactly(measured_runs) -> None:
    """Every layer output of every image equalled golden (the run raises otherwise); the report
    says so for every layer of the program, and the RTL classifies as golden does."""
    for (name, mode, driver, stalls), (program, report, _) in measured_runs.items():
        count = RUNS[mode, driver, stalls]
        assert report.driver == driver
        assert report.images == count == report.images_bit_exact
        assert report.image_indices == list(range(count))
        names = [op.name for op in program.layer_ops()]
        assert [row.name for row in report.layers] == names
        assert all(row.bit_exact for row in report.layers)
        assert report.rtl_predictions_equal_golden
        assert report.rtl_top1 == report.golden_top1
        if count >= 20:
            assert report.rtl_top1 >= 0.9, f"{name}: {report.rtl_top1:.0%} on the RTL"


def test_cycle_model_is_exact_per_layer(measured_runs, universal) -> None:
    """The closed form equals every measured layer run of every image, in both modes and
    through both drivers, and a model one cycle off either way is caught."""
    for (_, mode, driver, _), (program, report, measured) in _without_stalls(measured_runs).items():
        params = accelerator_for(program, universal, mode, **LIMITS)
        runs = network_runs(program)
        cycles = [record["cycles"] for record in measured["layers"]]
        assert [len(per_image) for per_image in cycles] == [RUNS[mode, driver, False]] * len(runs)
        check_cycles(params, runs, cycles)
        for error in (1, -1):
            with pytest.raises(CycleModelError, match=r"layer '.*': measured \[\d+\], model \d+"):
                check_cycles(params, runs, cycles, lambda p, r, e=error: layer_cycles(p, r) + e)
        assert report.cycles_per_image == sum(layer_cycles(params, run) for run in runs)


def _model_cycles(params, program, architecture, per_layer=None) -> list[int]:
    """The energy model's cycles of each layer of ``program`` on ``architecture``."""
    runs = tuple(network_runs(program))
    model_program = Program("net", runs, per_layer)
    memories = memories_for(params, [model_program], architecture_named(architecture))
    layers, _ = inference_activity(params, model_program, architecture, memories, load_table())
    return [activity.cycles for activity in layers]


def test_energy_model_cycles_are_the_measured_ones(measured_runs, universal) -> None:
    """The energy model's per-layer cycles of the ROM and of the whole universal codebook
    reloaded per layer, on the accelerator the networks ran on, are the cycles the RTL took
    for every layer of every image in rom and sram mode."""
    architectures = {"rom": "rom", "sram": "sram_per_layer_full"}
    for (_, mode, _, _), (program, _, measured) in _without_stalls(measured_runs).items():
        params = accelerator_for(program, universal, "rom", **LIMITS)
        cycles = _model_cycles(params, program, architectures[mode])
        for model, record in zip(cycles, measured["layers"], strict=True):
            assert set(record["cycles"]) == {model}


def test_sram_mode_pays_one_codebook_load_per_layer(measured_runs, universal) -> None:
    for name in NETWORKS:
        program, rom, _ = measured_runs[name, "rom", "harness", False]
        _, sram, _ = measured_runs[name, "sram", "harness", False]
        extra = sram.cycles_per_image - rom.cycles_per_image
        assert extra == len(program.layer_ops()) * universal.K


@pytest.fixture
def wrong_rom(monkeypatch, seed):
    """Fault injection: the accelerator is built with another codebook than the program's (the
    host's checks see the right one), so the scoreboard must catch every layer, whichever
    driver runs it."""
    for kind in (sim_network.Simulator, sim_network.Harness):
        build = kind.build

        def build_with_another_rom(params, codebook, build=build, **kwargs):
            other = random_codebook(codebook.K, codebook.D, seed + 1)
            wrong = dataclasses.replace(codebook, codewords=other.codewords)
            return build(params, wrong, **kwargs)

        monkeypatch.setattr(kind, "build", build_with_another_rom)


def test_a_mismatch_says_where_and_how_to_replay_it(tmp_path, seed, wrong_rom, monkeypatch):
    path = write_digits_program(tmp_path, seed)
    program = load_network(path)
    simulation = NetworkSimulation(path, tmp_path / "run", build_root=BUILD_ROOT)
    with pytest.raises(MismatchError) as caught:
        simulate_network(simulation, select_test_images(program, count=3), progress=False)
    message = str(caught.value)
    assert re.match(
        r"RTL != golden on 1 layer output\(s\); first: image 0, layer 'hidden' \(graph\[1\]\), "
        r"output channel \d+: expected -?\d+, RTL -?\d+ \(\d+ of 24 outputs differ\)\. "
        rf"Waveform of that run: vq4all simulate --network {path} --image 0 --waves$",
        message,
    ), message
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert (report["images"], report["images_bit_exact"]) == (0, 0)
    # The run stopped in 'hidden': 'logits' was never reached, so it has no measurement.
    hidden, logits = report["layers"]
    assert (hidden["bit_exact"], hidden["cycles"]) == (False, hidden["model_cycles"])
    assert (logits["bit_exact"], logits["cycles"], report["cycles_per_image"]) == (None,) * 3
    # The replay it suggests runs that image alone and leaves its waveform.
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(message.split("Waveform of that run: ")[1])[1:] + ["--quiet"]) == 2
    assert (tmp_path / "build" / "simulate" / "results" / "dump.vcd").stat().st_size > 0


#: Report fields that are wall times, or figures of them: all that a parallel run may change.
WALL_TIMES = ("simulation_wall_seconds", "simulated_cycles_per_second", "total_wall_seconds")


def _without_wall_times(report: dict) -> dict:
    return {key: value for key, value in report.items() if key not in WALL_TIMES}


def test_two_jobs_on_a_local_ray_cluster_report_what_one_does(measured_runs, programs, tmp_path):
    """dscnn's 20 images on two harness processes (Ray actors over the one build): the report
    and the measurements are the serial run's, image by image, but for wall times."""
    program, serial, serial_measured = measured_runs["dscnn", "rom", "harness", False]
    simulation = NetworkSimulation(
        programs["dscnn"], tmp_path / "run", build_root=BUILD_ROOT, jobs=2, **LIMITS
    )
    count = RUNS["rom", "harness", False]
    report = simulate_network(simulation, select_test_images(program, count=count), False)
    assert _without_wall_times(report.to_json()) == _without_wall_times(serial.to_json())
    measured = json.loads((tmp_path / "run" / "results" / "network.json").read_text())
    del measured["wall_seconds"], serial_measured["wall_seconds"]
    assert measured == serial_measured


def test_a_mismatch_on_a_worker_stops_the_run_as_it_would_serially(
    tmp_path, seed, wrong_rom
) -> None:
    path = write_digits_program(tmp_path, seed)
    images = select_test_images(load_network(path), count=6)
    messages, reports = [], []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        simulation = NetworkSimulation(path, out, build_root=BUILD_ROOT, jobs=jobs)
        with pytest.raises(MismatchError) as caught:
            simulate_network(simulation, images, progress=False)
        messages.append(str(caught.value).replace(str(out), "OUT"))
        reports.append(_without_wall_times(json.loads((out / "report.json").read_text())))
    assert messages[0] == messages[1]
    assert messages[0].startswith("RTL != golden on 1 layer output(s); first: image 0,")
    assert reports[0] == reports[1]


def test_jobs_are_refused_with_per_cycle_drivers(tmp_path, seed) -> None:
    path = write_digits_program(tmp_path, seed)
    simulation = NetworkSimulation(path, tmp_path / "run", jobs=2, idle=True)
    with pytest.raises(ValueError, match="--jobs 2: parallel runs use the C\\+\\+ harness"):
        simulate_network(simulation, select_test_images(load_network(path), count=2), False)
    assert not (tmp_path / "run").exists()


def test_keep_going_counts_every_mismatch(tmp_path, seed, wrong_rom) -> None:
    path = write_digits_program(tmp_path, seed)
    simulation = NetworkSimulation(path, tmp_path / "run", build_root=BUILD_ROOT, keep_going=True)
    images = select_test_images(load_network(path), count=3)
    with pytest.raises(MismatchError, match=r"RTL != golden on 6 layer output\(s\)"):
        simulate_network(simulation, images, progress=False)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert (report["images"], report["images_bit_exact"]) == (3, 0)
    assert not any(row["bit_exact"] for row in report["layers"])


def _simulated(argv: list[str], out: Path) -> dict:
    """The report of ``vq4all simulate`` run with ``argv`` into ``out``."""
    assert main(["simulate", *argv, "--quiet", "-o", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def _whole_and_exact(report: dict, images: int) -> None:
    assert report["images"] == report["images_bit_exact"] == images
    assert [row["name"] for row in report["layers"]] == ["stem", "left", "right", "head"]
    assert all(row["cycles"] == row["model_cycles"] for row in report["layers"])
    assert report["rtl_predictions_equal_golden"]


def test_a_network_of_ones_own_through_the_api_runs_on_the_rtl(
    tmp_path, branchy, codebook, digits
) -> None:
    """Not an nn.Sequential (a BatchNorm, branches, a residual, ReLU6, global average pooling,
    x.view): compressed through the public API with a DataLoader, exported through torch.fx,
    and run whole on the RTL by ``vq4all simulate`` on images from a tensor file."""
    loader = DataLoader(TensorDataset(digits.train_x, digits.train_y), batch_size=64)
    result = vq4all.compress(branchy, codebook, loader, progress=False)
    save_codebook(tmp_path / "codebook.safetensors", codebook)
    save_network(tmp_path / "branchy.safetensors", vq4all.export(result, codebook))
    np.save(tmp_path / "test.npy", digits.test_x[:5].numpy())
    argv = ["--network", str(tmp_path / "branchy.safetensors"), "--data",
            str(tmp_path / "test.npy"), "--images", "5"]  # fmt: skip
    report = _simulated(argv, tmp_path / "run")
    _whole_and_exact(report, 5)
    assert math.isnan(report["rtl_top1"])  # a tensor file without labels


def test_a_model_file_and_a_tensor_file_through_the_cli_run_on_the_rtl(
    tmp_path, model_file, codebook, digits, capsys
) -> None:
    """The same network as a user gives it to the command line: a Python file with a factory,
    its weights, and data as a tensor file; compress, export and simulate take the files."""
    save_codebook(tmp_path / "codebook.safetensors", codebook)
    np.savez(tmp_path / "train.npz", images=digits.train_x.numpy(), labels=digits.train_y.numpy())
    np.savez(tmp_path / "test.npz", images=digits.test_x.numpy(), labels=digits.test_y.numpy())
    files = {name: str(tmp_path / name) for name in ("codebook.safetensors", "c.safetensors")}
    compress = ["compress", "--codebook", files["codebook.safetensors"], "--network",
                f"{model_file}/net.py:make", "--weights", str(model_file / "net.pt"),
                "--data", str(tmp_path / "train.npz"), "-o", files["c.safetensors"]]  # fmt: skip
    assert main(compress) == 0
    assert main(["export", "--codebook", files["codebook.safetensors"], "--compressed",
                 files["c.safetensors"], "-o", str(tmp_path / "net.safetensors")]) == 0  # fmt: skip
    argv = ["--network", str(tmp_path / "net.safetensors"), "--data",
            str(tmp_path / "test.npz"), "--images", "4"]  # fmt: skip
    report = _simulated(argv, tmp_path / "run")
    _whole_and_exact(report, 4)
    assert report["rtl_top1"] == report["golden_top1"] >= 0.5
    # With 16-bit activations: an accelerator built for them (its act and out streams twice as
    # wide, a 40-bit accumulator) runs the program bit-exactly, in the model's cycles, through
    # the C++ harness and through cocotb's drivers under stalls.
    wide = str(tmp_path / "net16.safetensors")
    assert main(["export", "--codebook", files["codebook.safetensors"], "--compressed",
                 files["c.safetensors"], "--activation-bits", "16", "-o", wide]) == 0  # fmt: skip
    assert load_network(wide).activation_bits == 16
    argv = ["--network", wide, "--data", str(tmp_path / "test.npz")]
    _whole_and_exact(_simulated([*argv, "--images", "4"], tmp_path / "run16"), 4)
    stalled = _simulated(
        [*argv, "--images", "2", "--cocotb", "--idle", "--backpressure"], tmp_path / "stalled16"
    )
    assert stalled["images"] == stalled["images_bit_exact"] == 2
    assert stalled["rtl_predictions_equal_golden"]
    capsys.readouterr()
    assert main(["simulate", *argv, "--activation-bits", "8", "-o", str(tmp_path / "no")]) == 2
    assert "--activation-bits 8 does not match the program's 16-bit" in capsys.readouterr().err


def test_an_unsupported_op_stops_the_export_with_one_line_and_no_file(
    tmp_path, codebook, capsys
) -> None:
    save_codebook(tmp_path / "codebook.safetensors", codebook)
    sorter = write_model_file(
        tmp_path / "sorter.py",
        "class Sorter(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(64, 10)\n\n    def forward(self, x):\n"
        "        return torch.sort(self.fc(torch.flatten(x, 1)), dim=1).values\n",
        "Sorter",
    )
    np.save(tmp_path / "d.npy", np.random.default_rng(0).standard_normal((64, 1, 8, 8)))
    cb, checkpoint = str(tmp_path / "codebook.safetensors"), str(tmp_path / "c.safetensors")
    compress = ["compress", "--codebook", cb, "--network", sorter,
                "--data", str(tmp_path / "d.npy"), "--epochs", "2", "-o", checkpoint]  # fmt: skip
    assert main(compress) == 2  # refused before it starts, by the same walk as the export's
    assert "--no-export-check" in capsys.readouterr().err
    assert main([*compress, "--no-export-check"]) == 0
    capsys.readouterr()
    program = tmp_path / "sorter.safetensors"
    code = main(["export", "--codebook", cb, "--compressed", checkpoint, "-o", str(program)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert re.fullmatch(
        r"vq4all: error: node 'sort' \(call_function sort\.default\) at .*sorter\.py:12 has no "
        r"integer equivalent in a network program\n",
        error,
    ), error
    assert not program.exists()


def test_per_layer_vq_runs_whole_in_sram_mode(zoo, digits, tmp_path) -> None:
    """Per-layer VQ measured on the RTL: dscnn's per-layer k-means program (each layer's own
    codebook, K_l codewords) runs in sram mode, each layer loading only its own codebook,
    bit-exact on 20 test images; every layer takes the model's cycles, which are the rom
    cycles plus exactly K_l, and a model one cycle off is caught."""
    model = frozen_at_nearest(zoo["dscnn"], kmeans_codebooks(zoo["dscnn"], D=8))
    program = export_network(model, None, digits.calibration(), digits.name)
    path = tmp_path / "dscnn-kmeans.safetensors"
    save_network(path, program)
    simulation = NetworkSimulation(path, tmp_path / "run", mode="sram", build_root=BUILD_ROOT)
    with pytest.raises(ValueError, match="loads each layer's own codebook into an SRAM"):
        simulate_network(dataclasses.replace(simulation, mode="rom"), None, progress=False)
    images = select_test_images(program, count=20)
    report = simulate_network(simulation, images, progress=False)
    assert report.images == report.images_bit_exact == 20
    assert all(row.bit_exact for row in report.layers) and report.rtl_predictions_equal_golden
    measured = json.loads((tmp_path / "run" / "results" / "network.json").read_text())
    params = accelerator_for(program, None, "sram")
    sizes = [program.codebooks[op.layer].K for op in program.layer_ops()]
    assert params.K == 1 << (max(sizes) - 1).bit_length() < 65536
    runs = network_runs(program)
    cycles = [record["cycles"] for record in measured["layers"]]
    check_cycles(params, runs, cycles)
    rom = dataclasses.replace(params, mode="rom")
    for run, size, per_image in zip(runs, sizes, cycles, strict=True):
        assert set(per_image) == {layer_cycles(rom, run) + size}
    # The energy model's per-layer VQ architecture takes the cycles measured.
    model = _model_cycles(params, program, "sram_per_layer", tuple(runs))
    assert [set(per_image) for per_image in cycles] == [{c} for c in model]
    for error in (1, -1):
        with pytest.raises(CycleModelError):
            check_cycles(params, runs, cycles, lambda p, r, e=error: layer_cycles(p, r) + e)
