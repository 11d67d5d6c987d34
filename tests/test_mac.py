"""The MAC array in Amaranth's simulator against numpy dot products."""

from __future__ import annotations

import numpy as np
import pytest

from tests.amaranth_sim import simulate
from vq4all.hw.mac import MacArray
from vq4all.hw.params import AcceleratorParams


@pytest.mark.parametrize("bits", [8, 16], ids=["int8", "int16"])
def test_mac_array_accumulates_groups(rng, bits: int) -> None:
    params = AcceleratorParams(D=4, L=3, activation_bits=bits)
    lowest, highest = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    dut = MacArray(params)
    blocks_per_group = [1, 3, 5, 2]
    beats = []
    for blocks in blocks_per_group:
        for j in range(blocks):
            codewords = rng.integers(-128, 128, size=(params.L, params.D))
            x = rng.integers(lowest, highest + 1, size=params.D)
            beats.append((codewords, x, j == 0, j == blocks - 1))
    # The largest product, -128 * lowest, in every multiplier.
    beats[0] = (np.full((params.L, params.D), -128), np.full(params.D, lowest), True, True)
    expected, total = [], np.zeros(params.L, dtype=np.int64)
    for codewords, x, first, last in beats:
        total = (codewords @ x) + (0 if first else total)
        if last:
            expected.append(total.tolist())
    got = []

    async def testbench(ctx):
        drain = [(None, None, 0, 0)] * (MacArray.LATENCY + 1)
        for i, (codewords, x, first, last) in enumerate(beats + drain):
            if i % 4 == 2:  # a bubble: nothing valid this cycle
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
                ctx.set(dut.codewords, codewords.tolist())
                ctx.set(dut.x, x.tolist())
            await ctx.tick()
            if ctx.get(dut.result_valid):
                got.append([int(v) for v in ctx.get(dut.acc)])

    simulate(dut, testbench)
    assert got == expected
