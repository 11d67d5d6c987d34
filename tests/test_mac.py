"""The MAC array in Amaranth's simulator against numpy: dot products, and packed columns."""

from __future__ import annotations

import numpy as np
import pytest

from tests.amaranth_sim import simulate
from vq4all.hw.mac import MacArray
from vq4all.hw.params import AcceleratorParams


@pytest.mark.parametrize("bits", [8, 16], ids=["int8", "int16"])
def test_mac_array_accumulates_groups(rng, bits: int) -> None:
    """Groups of dot-product beats (one total per lane) and of packed beats (each lane's
    codeword entry times D columns of its own activations, a total per column), mixed, with
    bubbles; each group's results in order, the packed ones a column per cycle."""
    params = AcceleratorParams(D=4, L=3, activation_bits=bits)
    lowest, highest = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    dut = MacArray(params)
    # (beats, packed) per group; a packed group takes at least D beats, and the group after it
    # may finish no sooner than D cycles after it.
    groups = [(1, False), (3, False), (5, True), (2, False), (4, True), (6, True), (1, False)]
    beats = []
    for count, packed in groups:
        for j in range(count):
            codewords = rng.integers(-128, 128, size=(params.L, params.D))
            x = rng.integers(lowest, highest + 1, size=(params.L, params.D))
            entry = int(rng.integers(params.D))
            beats.append((codewords, x, entry, packed, j == 0, j == count - 1))
    # The largest product, -128 * lowest, in every multiplier.
    extreme = np.full((params.L, params.D), -128), np.full((params.L, params.D), lowest)
    beats[0] = (*extreme, 0, False, True, True)
    expected = []
    for codewords, x, entry, packed, first, last in beats:
        if packed:  # [lane, column]
            products = codewords[:, entry : entry + 1] * x
        else:  # lane 0's activations for every lane: the accelerator broadcasts them
            products = (codewords * x).sum(axis=1, keepdims=True)
        total = products + (0 if first else total)  # noqa: F821 - set by the first beat
        if last:
            expected.extend(total.T.tolist())
    got = []

    async def testbench(ctx):
        drain = [(None,) * 6] * (MacArray.LATENCY + params.D + 1)
        for i, (codewords, x, entry, packed, first, last) in enumerate(beats + drain):
            if i % 4 == 2 and codewords is not None and first:  # a bubble between groups
                ctx.set(dut.valid, 0)
                await ctx.tick()
                if ctx.get(dut.result_valid):
                    got.append([int(v) for v in ctx.get(dut.acc)])
            if codewords is None:
                ctx.set(dut.valid, 0)
            else:
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, int(first))
                ctx.set(dut.last, int(last))
                ctx.set(dut.packed, int(packed))
                ctx.set(dut.entry, entry)
                ctx.set(dut.codewords, codewords.tolist())
                ctx.set(dut.x, x.tolist())
            await ctx.tick()
            if ctx.get(dut.result_valid):
                got.append([int(v) for v in ctx.get(dut.acc)])
            if packed and last:  # the next group may finish D cycles later at the earliest
                ctx.set(dut.valid, 0)
                for _ in range(params.D - 1):
                    await ctx.tick()
                    if ctx.get(dut.result_valid):
                        got.append([int(v) for v in ctx.get(dut.acc)])

    simulate(dut, testbench)
    assert got == expected
