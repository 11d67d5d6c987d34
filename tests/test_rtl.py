"""The generated Verilog in Verilator, driven by cocotb: bit-exact against golden on a seeded
set of random layers, cycle-exact against the closed form, lint-clean, and reset-safe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vq4all.golden.codebook import save_codebook
from vq4all.golden.layer import save_layer
from vq4all.golden.synthetic import (
    MAX_ROW,
    MIN_ROW,
    random_activations,
    random_codebook,
    random_layer,
)
from vq4all.hw.accelerator import PIPELINE_DEPTH
from vq4all.hw.codebook import CodebookMemory
from vq4all.hw.mac import MacArray
from vq4all.hw.params import AcceleratorParams
from vq4all.hw.queue import OutputQueue
from vq4all.hw.requant import Requantizer
from vq4all.sim.arch.cycles import utilization
from vq4all.sim.arch.mapping import LayerRun
from vq4all.sim.rtl.build import SimulationError, Simulator, lint_verilog, write_verilog
from vq4all.sim.rtl.encode import LayerBeats
from vq4all.sim.rtl.job import Job

pytestmark = [pytest.mark.verilator, pytest.mark.slow]

BUILD_ROOT = Path(__file__).resolve().parents[1] / "build" / "sim"
STALLS = [(idle, backpressure) for idle in (0, 1) for backpressure in (0, 1)]
CONFIGS = {
    "rom-K256-D8-L4": AcceleratorParams(
        K=256, D=8, L=4, max_inputs=1024, max_outputs=256, mode="rom"
    ),
    "sram-K256-D8-L4": AcceleratorParams(
        K=256, D=8, L=4, max_inputs=1024, max_outputs=256, mode="sram"
    ),
    "rom-K1024-D4-L8": AcceleratorParams(
        K=1024, D=4, L=8, max_inputs=512, max_outputs=128, mode="rom"
    ),
    "rom-K256-D8-L4-int16": AcceleratorParams(
        K=256, D=8, L=4, max_inputs=1024, max_outputs=256, mode="rom", activation_bits=16
    ),
}


def coverage_layers(params: AcceleratorParams, codebook, rng: np.random.Generator):
    """(name, program, x) for the required shapes, the arithmetic extremes and random layers.

    M in {1, L-1, L, 3L+1, random 64..256} x N in {D, D+1, 7D+3, random 64..max}, ReLU
    alternating; the four sign combinations of extreme codewords and activations at the
    largest N (the first reaches the largest accumulator exactly); random layers, the largest
    one of all included. Activations are ``params.activation_bits`` wide.
    """
    bits = params.activation_bits
    lowest, highest = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    big_n = min(1024, params.max_inputs)
    shapes = [
        (m, n)
        for m in (
            1,
            params.L - 1,
            params.L,
            3 * params.L + 1,
            int(rng.integers(64, params.max_outputs + 1)),
        )
        for n in (params.D, params.D + 1, 7 * params.D + 3, int(rng.integers(64, big_n + 1)))
    ]
    layers = []
    for i, (m, n) in enumerate(shapes):
        layers.append(
            (
                f"shape{i:02d}_{m}x{n}",
                random_layer(codebook, m, n, i % 2 == 0, rng, activation_bits=bits),
                random_activations(rng, (n,), bits=bits),
            )
        )
    for i, (row, value) in enumerate(
        [(MIN_ROW, lowest), (MAX_ROW, lowest), (MIN_ROW, highest), (MAX_ROW, highest)]
    ):
        program = random_layer(
            codebook, 2 * params.L, big_n, i % 2 == 1, rng, extreme_row=row, activation_bits=bits
        )
        layers.append(
            (
                f"extreme{i}_row{row}_x{value}",
                program,
                random_activations(rng, (big_n,), extreme=value, bits=bits),
            )
        )
    for i in range(7):
        m, n = int(rng.integers(params.L, 65)), int(rng.integers(16, 300))
        layers.append(
            (
                f"random{i}_{m}x{n}",
                random_layer(codebook, m, n, bool(i % 2), rng, activation_bits=bits),
                random_activations(rng, (n,), bits=bits),
            )
        )
    m, n = params.max_outputs, params.max_inputs
    layers.append(
        (
            f"largest_{m}x{n}",
            random_layer(codebook, m, n, False, rng, activation_bits=bits),
            random_activations(rng, (n,), bits=bits),
        )
    )
    return layers


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def rtl_run(request, tmp_path_factory, seed):
    """Build one configuration, run every cocotb test on its coverage layers, return the results."""
    params = CONFIGS[request.param]
    work = tmp_path_factory.mktemp(request.param)
    rng = np.random.default_rng(seed)
    codebook = random_codebook(params.K, params.D, seed)
    save_codebook(work / "codebook.safetensors", codebook)
    layers = coverage_layers(params, codebook, rng)
    cases = []
    for name, program, x in layers:
        save_layer(work / f"{name}.safetensors", program)
        np.save(work / f"{name}.npy", x)
        cases.append((str(work / f"{name}.safetensors"), str(work / f"{name}.npy")))
    largest = max(range(len(layers)), key=lambda i: layers[i][1].indices.size)
    job = Job(
        params,
        str(work / "codebook.safetensors"),
        str(work / "results"),
        cases,
        seed=seed,
        reset_case=largest,
    )
    simulator = Simulator.build(params, codebook, root=BUILD_ROOT)
    simulator.run(job, work / "job.json", test_filter="layers_match_golden|reset_mid_layer")
    results = {
        path.stem: json.loads(path.read_text()) for path in (work / "results").glob("*.json")
    }
    return params, codebook, layers, results, work


def test_at_least_30_layers_cover_the_required_shapes(rtl_run) -> None:
    params, _, layers, _, _ = rtl_run
    assert len(layers) >= 30
    shapes = {(program.out_features, program.in_features) for _, program, _ in layers}
    for m in (1, params.L - 1, params.L, 3 * params.L + 1):
        for n in (params.D, params.D + 1, 7 * params.D + 3):
            assert (m, n) in shapes
    assert {program.relu for _, program, _ in layers} == {True, False}


@pytest.mark.parametrize(("idle", "backpressure"), STALLS)
def test_every_layer_ran_under_every_stall_pattern(rtl_run, idle, backpressure) -> None:
    """The cocotb test compared each layer with golden; here: it got through all of them, and
    the stall generators really stalled (without them the cycles are the model's)."""
    params, _, layers, results, _ = rtl_run
    rows = results[f"layers_idle{idle}_backpressure{backpressure}"]
    assert [row["layer"] for row in rows] == [name for name, _, _ in layers]
    slower = sum(row["cycles"] > row["model_cycles"] for row in rows)
    if idle or backpressure:
        assert slower >= len(rows) // 2, f"only {slower} of {len(rows)} layers were stalled"
    else:
        assert slower == 0


def test_cycles_are_the_documented_formula(rtl_run) -> None:
    """The documented count (README, hw/accelerator.py), restated here from the architecture:
    one config cycle, K codeword writes in sram mode, one cycle per index beat, the register
    stages that each block states from the last beat to the requantizer's output, and the
    output queue."""
    params, _, layers, results, _ = rtl_run
    rows = results["layers_idle0_backpressure0"]
    load = params.K if params.mode == "sram" else 0
    stages = CodebookMemory.LATENCY + MacArray.LATENCY + Requantizer.LATENCY + OutputQueue.LATENCY
    for row, (_, program, _) in zip(rows, layers, strict=True):
        beats = -(-program.out_features // params.L) * -(-program.in_features // params.D)
        assert row["cycles"] == 1 + load + beats + stages, row


def test_lanes_stay_busy(rtl_run) -> None:
    """Utilization >= 0.9 wherever the shape allows it: whole groups of L channels, blocks of D
    inputs with N >= 64, and enough beats (nine times the config cycle and the pipeline fill)
    to hide the constant fill and drain.

    In sram mode the K cycles that load the codebook are left out: they are the cost that the
    rom mode removes, and the cycle model accounts for them separately.
    """
    params, _, layers, results, _ = rtl_run
    load = params.K if params.mode == "sram" else 0
    rows = results["layers_idle0_backpressure0"]
    busy = [
        row
        for row, (_, program, _) in zip(rows, layers, strict=True)
        if program.out_features % params.L == 0
        and program.in_features >= 64
        and program.in_features % params.D == 0
        and program.indices.size // params.L >= 9 * (1 + PIPELINE_DEPTH)
    ]
    assert busy, "no layer in the set is large enough to measure utilization"
    for row in busy:
        run = LayerRun(row["layer"], row["M"], row["N"])
        assert utilization(params, run, row["cycles"] - load) >= 0.9, row


def test_reset_interrupted_a_layer(rtl_run) -> None:
    """The cocotb test checked the rerun after the reset against golden; here: the reset did
    cut the largest layer short, with part of its beats issued and of its outputs out."""
    params, _, layers, results, _ = rtl_run
    (row,) = results["reset_mid_layer"]
    name, program, _ = max(layers, key=lambda layer: layer[1].indices.size)
    assert row["layer"] == name
    assert 0 < row["index_beats_before_reset"] < row["index_beats"]
    assert row["outputs_before_reset"] < -(-program.out_features // params.L)


def test_generated_verilog_is_lint_clean(rtl_run) -> None:
    params, codebook, _, _, work = rtl_run
    verilog = write_verilog(params, work / "rtl", codebook)
    lint_verilog(verilog)
    manifest = json.loads((work / "rtl" / "manifest.json").read_text())
    assert manifest["params"]["mode"] == params.mode
    assert manifest["codebook_sha256"] == (codebook.sha256 if params.mode == "rom" else None)


def test_a_wrong_rom_is_caught(tmp_path, seed) -> None:
    """The scoreboard can fail: RTL built with one codebook, checked against another's golden."""
    params = CONFIGS["rom-K256-D8-L4"]
    built_with = random_codebook(params.K, params.D, seed)
    checked_against = random_codebook(params.K, params.D, seed + 1)
    rng = np.random.default_rng(seed)
    save_codebook(tmp_path / "codebook.safetensors", checked_against)
    save_layer(tmp_path / "layer.safetensors", random_layer(checked_against, 8, 64, False, rng))
    np.save(tmp_path / "layer.npy", random_activations(rng, (64,)))
    case = (str(tmp_path / "layer.safetensors"), str(tmp_path / "layer.npy"))
    job = Job(params, str(tmp_path / "codebook.safetensors"), str(tmp_path / "results"), [case])
    simulator = Simulator.build(params, built_with, root=BUILD_ROOT)
    with pytest.raises(
        SimulationError, match=r"1 of 1 cocotb tests failed \(.*RTL \[.*\] != golden"
    ):
        simulator.run_layers(job, tmp_path / "job.json")


@pytest.mark.verilator
def test_sram_mode_loads_only_the_layers_own_codebook(tmp_path, seed) -> None:
    """Per-layer VQ on the RTL: layers with their own 16-entry codebook on an accelerator whose
    SRAM holds 256 load 16 codewords, so each run takes 240 cycles fewer than with the whole
    codebook, bit-exact under every stall pattern (the cocotb test compares each output with
    golden, and, without stalls, the cycles with the model)."""
    params = CONFIGS["sram-K256-D8-L4"]
    own = random_codebook(16, params.D, seed)
    save_codebook(tmp_path / "own.safetensors", own)
    rng = np.random.default_rng(seed)
    shapes = [(params.L, params.D), (9, 70), (33, 200)]
    cases = []
    for i, (m, n) in enumerate(shapes):
        save_layer(tmp_path / f"l{i}.safetensors", random_layer(own, m, n, bool(i % 2), rng))
        np.save(tmp_path / f"l{i}.npy", random_activations(rng, (n,)))
        cases.append((str(tmp_path / f"l{i}.safetensors"), str(tmp_path / f"l{i}.npy")))
    job = Job(
        params, str(tmp_path / "own.safetensors"), str(tmp_path / "results"), cases, seed=seed
    )
    simulator = Simulator.build(params, None, root=BUILD_ROOT)
    simulator.run(job, tmp_path / "job.json", test_filter="layers_match_golden")
    for idle, backpressure in STALLS:
        result = tmp_path / "results" / f"layers_idle{idle}_backpressure{backpressure}.json"
        rows = json.loads(result.read_text())
        assert [row["match"] for row in rows] == [True] * len(shapes)
    rows = json.loads((tmp_path / "results" / "layers_idle0_backpressure0.json").read_text())
    for row, (m, n) in zip(rows, shapes, strict=True):
        beats = -(-m // params.L) * -(-n // params.D)
        assert row["cycles"] == row["model_cycles"] == 1 + 16 + beats + PIPELINE_DEPTH, row


def test_a_codebook_must_fit_the_accelerators_memory(seed) -> None:
    """A ROM runs only its own K codewords; an SRAM of K takes any codebook of at most K."""
    small, large = random_codebook(16, 8, seed), random_codebook(512, 8, seed)
    rng = np.random.default_rng(seed)
    rom, sram = CONFIGS["rom-K256-D8-L4"], CONFIGS["sram-K256-D8-L4"]
    for params, codebook, fits in ((rom, small, False), (sram, small, True), (sram, large, False)):
        program = random_layer(codebook, 4, 16, False, rng)
        if fits:
            assert LayerBeats(params, program, codebook).run.codebook_entries == codebook.K
            continue
        with pytest.raises(ValueError, match=f"field 'codebook_size': the layer's K={codebook.K}"):
            LayerBeats(params, program, codebook)
