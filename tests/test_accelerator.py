"""The whole accelerator in Amaranth's simulator: producers and consumers on every stream,
with and without stalls, against golden outputs and the closed-form cycle count."""

from __future__ import annotations

import random

import numpy as np
import pytest

from golden.layer import run_layer
from golden.synthetic import random_activations, random_codebook, random_layer
from hw.accelerator import Accelerator
from hw.params import AcceleratorParams
from sim.cycles import layer_cycles
from sim.encode import encode_layer
from tests.amaranth_sim import get_all, put_all, simulate

PARAMS = {"K": 16, "D": 4, "L": 3, "max_inputs": 64, "max_outputs": 32}


def _run(dut, params, runs, stalls: bool):
    """Run layers back to back; return the output beats and the handshake cycles."""
    outputs, handshakes = [], {"in": [], "out": []}
    streams = [encode_layer(params, program, x, codebook) for program, x, codebook in runs]
    beats = {name: [b for s in streams for b in s.inputs()[name]] for name in params.input_streams}
    testbenches = []
    for name in params.input_streams:

        async def producer(ctx, name=name):
            await put_all(
                ctx, getattr(dut, name), beats[name], random.Random(name) if stalls else None
            )

        testbenches.append(producer)

    async def consumer(ctx):
        outputs.extend(
            await get_all(
                ctx, dut.out, sum(s.groups for s in streams), random.Random(7) if stalls else None
            )
        )

    async def watch(ctx):
        cycle = 0
        signals = (dut.config.valid, dut.config.ready, dut.out.valid, dut.out.ready)
        async for _, _, config_valid, config_ready, out_valid, out_ready in ctx.tick().sample(
            *signals
        ):
            if config_valid and config_ready:
                handshakes["in"].append(cycle)
            if out_valid and out_ready:
                handshakes["out"].append(cycle)
            cycle += 1

    simulate(dut, *testbenches, consumer, monitors=[watch])
    flat = np.array([[int(v) for v in beat] for beat in outputs]).reshape(-1)
    results, start = [], 0
    for s in streams:
        results.append(flat[start : start + s.out_features])
        start += s.groups * params.L
    return results, handshakes


@pytest.mark.parametrize("mode", ["rom", "sram"])
@pytest.mark.parametrize("stalls", [False, True], ids=["no-stalls", "stalls"])
def test_layers_match_golden(mode, stalls, rng) -> None:
    params = AcceleratorParams(**PARAMS, mode=mode)
    codebook = random_codebook(params.K, params.D, seed=3)
    shapes = [(7, 13, True), (3, 4, False), (1, 5, True), (10, 64, False)]
    runs = []
    for m, n, relu in shapes:
        runs.append(
            (random_layer(codebook, m, n, relu, rng), random_activations(rng, (n,)), codebook)
        )
    dut = Accelerator(params, codebook.codewords if mode == "rom" else None)
    results, handshakes = _run(dut, params, runs, stalls)
    for (program, x, _), got in zip(runs, results, strict=True):
        assert np.array_equal(got, run_layer(codebook, program, x[None])[0])
    if not stalls:
        # A single layer's cycles are the closed form; the first layer's config is the first input.
        program = runs[0][0]
        groups = -(-program.out_features // params.L)
        last_out = handshakes["out"][groups - 1]
        assert last_out - handshakes["in"][0] + 1 == layer_cycles(
            params, program.out_features, program.in_features
        )


def test_rejects_bad_parameters(codebook) -> None:
    with pytest.raises(TypeError, match="params must be AcceleratorParams"):
        Accelerator({"K": 256})
    with pytest.raises(ValueError, match="rom mode needs the codewords"):
        Accelerator(AcceleratorParams())
