"""The whole accelerator in Amaranth's simulator: producers and consumers on every stream,
with and without stalls, against golden outputs and the closed-form cycle count, for linear
layers (one column) and convolutions (many columns, grouped and depthwise)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from amaranth.lib import data

from tests.amaranth_sim import get_all, put_all, simulate
from vq4all.golden.layer import ConvGeometry, run_layer
from vq4all.golden.synthetic import random_activations, random_codebook, random_layer
from vq4all.hw.accelerator import Accelerator, output_slots
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.cycles import layer_cycles
from vq4all.sim.rtl.encode import LayerBeats

PARAMS = {"K": 16, "D": 4, "L": 3, "max_inputs": 64, "max_outputs": 32, "max_columns": 128}


def _conv(codebook, rng, out_channels, in_channels, kernel, groups, relu, stride=1, padding=1):
    """A random conv2d layer program and its geometry."""
    inputs = in_channels // groups * kernel * kernel
    geometry = ConvGeometry(in_channels, (kernel, kernel), (stride, stride), (padding,) * 2, groups)
    base = random_layer(codebook, out_channels, inputs, relu, rng)
    return dataclasses.replace(base, kind="conv2d", conv=geometry)


def _run(dut, params, runs, stalls: bool, hold: int = 0):
    """Run layers back to back, the output held not ready for the first ``hold`` cycles; return
    each one's outputs and the handshake cycles (config, index, out)."""
    layers = [LayerBeats(params, program, codebook, x.shape) for program, x, codebook in runs]
    inputs = [beats.inputs(x) for beats, (_, x, _) in zip(layers, runs, strict=True)]
    streams = {
        name: [data.Const(layout, beat) for each in inputs for beat in each[name]]
        for name, layout in params.input_streams.items()
    }
    received, handshakes = [], {"in": [], "index": [], "out": []}
    testbenches = []
    for name in params.input_streams:

        async def producer(ctx, name=name):
            await put_all(
                ctx, getattr(dut, name), streams[name], random.Random(name) if stalls else None
            )

        testbenches.append(producer)

    async def consumer(ctx):
        rng = random.Random(7) if stalls else None
        count = sum(beats.output_beats for beats in layers)
        if hold:
            await ctx.tick().repeat(hold)
        received.extend(beat.as_bits() for beat in await get_all(ctx, dut.out, count, rng))

    async def watch(ctx):
        cycle = 0
        streams = {"in": dut.config, "index": dut.index, "out": dut.out}
        signals = [signal for s in streams.values() for signal in (s.valid, s.ready)]
        async for _, _, *sampled in ctx.tick().sample(*signals):
            for i, name in enumerate(streams):
                if sampled[2 * i] and sampled[2 * i + 1]:
                    handshakes[name].append(cycle)
            cycle += 1

    simulate(dut, *testbenches, consumer, monitors=[watch])
    results, start = [], 0
    for beats in layers:
        results.append(beats.outputs(received[start : start + beats.output_beats]))
        start += beats.output_beats
    return layers, results, handshakes


@pytest.mark.parametrize("mode", ["rom", "sram"])
@pytest.mark.parametrize("stalls", [False, True], ids=["no-stalls", "stalls"])
def test_layers_match_golden(mode, stalls, rng) -> None:
    params = AcceleratorParams(**PARAMS, mode=mode)
    codebook = random_codebook(params.K, params.D, seed=3)
    runs = [
        (random_layer(codebook, m, n, relu, rng), random_activations(rng, (n,)), codebook)
        for m, n, relu in [(7, 13, True), (3, 4, False), (1, 5, True), (10, 64, False)]
    ]
    # A convolution (several groups of L channels per column), a depthwise one (one channel
    # per group of columns) and a strided, unpadded one: many columns per run, the first two
    # column-packed.
    convs = [
        (_conv(codebook, rng, 7, 2, 3, 1, True), (2, 4, 3)),
        (_conv(codebook, rng, 4, 4, 3, 4, False), (4, 3, 3)),
        (_conv(codebook, rng, 3, 2, 2, 1, True, stride=2, padding=0), (2, 5, 4)),
    ]
    runs += [(p, random_activations(rng, shape), codebook) for p, shape in convs]
    dut = Accelerator(params, codebook.codewords if mode == "rom" else None)
    layers, results, handshakes = _run(dut, params, runs, stalls)
    assert [beats.tiling.packed for beats in layers[-3:]] == [True, True, False]
    for (program, x, _), got in zip(runs, results, strict=True):
        assert np.array_equal(got, run_layer(codebook, program, x[None])[0])
    if not stalls:
        # Each run's cycles are the closed form: from its config to its last output beat. A run's
        # config is accepted while the one before it drains, so runs overlap by the drain.
        ends = np.cumsum([beats.output_beats for beats in layers]) - 1
        for beats, start, end in zip(layers, handshakes["in"], ends, strict=True):
            assert handshakes["out"][end] - start + 1 == layer_cycles(params, beats.run)


def test_a_full_output_queue_stops_the_issue(rng) -> None:
    """Held not ready, the output takes results while 3D credits are free, one per result, and
    the issue stops until beats leave; then every output arrives, in order, equal to golden."""
    params = AcceleratorParams(**PARAMS)
    codebook = random_codebook(params.K, params.D, seed=3)
    # A 1x1 convolution of 3 channels (one group of L) over 8x8 pixels: every index beat is
    # its group's last, 64 results.
    program = _conv(codebook, rng, 3, 4, 1, 1, True, padding=0)
    x = random_activations(rng, (4, 8, 8))
    dut = Accelerator(params, codebook.codewords)
    hold = 200
    layers, (got,), handshakes = _run(dut, params, [(program, x, codebook)], False, hold)
    assert np.array_equal(got, run_layer(codebook, program, x[None])[0])
    issued = len([cycle for cycle in handshakes["index"] if cycle < hold])
    # Each issue needs 3D credits beside the ones the two issues before it are still taking.
    assert issued == output_slots(params) - 3 * params.D + 3
    assert handshakes["out"][0] == hold
    assert len(handshakes["index"]) == layers[0].run.columns


def test_rejects_bad_parameters(codebook) -> None:
    with pytest.raises(TypeError, match="params must be AcceleratorParams"):
        Accelerator({"K": 256})
    with pytest.raises(ValueError, match="rom mode needs the codewords"):
        Accelerator(AcceleratorParams())
