"""The requantization unit in Amaranth's simulator against the golden requantize()."""

from __future__ import annotations

import numpy as np
import torch

from golden.numerics import ACC_MAX, ACC_MIN, MULT_MAX, SHIFT_MAX, requantize
from hw.params import AcceleratorParams
from hw.requant import Requantizer
from tests.amaranth_sim import simulate


def _vectors(rng: np.random.Generator, count: int):
    """Random 4-lane vectors; the first four reach the extremes: the largest totals of both
    signs (acc + bias = ACC_MAX and ACC_MIN) with the largest multiplier, at shifts 1 to 48;
    the next six land on both sides of every clamp bound."""
    acc = rng.integers(-(2**24), 2**24, size=(count, 4))
    bias = rng.integers(-(2**20), 2**20, size=(count, 4))
    mult = rng.integers(0, MULT_MAX + 1, size=(count, 4))
    shift = rng.integers(1, SHIFT_MAX + 1, size=(count, 4))
    relu = rng.integers(0, 2, size=count)
    acc[:4] = [ACC_MAX - 7, ACC_MIN + 9, 0, -1]
    bias[:4] = [7, -9, 0, 0]
    mult[:4] = MULT_MAX
    shift[:4] = [[1], [SHIFT_MAX], [31], [47]]
    # Then totals on either side of each clamp bound, rounded at shift 1 (y = (t + 1) >> 1),
    # with and without ReLU.
    bounds = [[253, 254, 255, 256], [-3, -2, -1, 0], [-259, -258, -257, -256]] * 2
    acc[4:10], bias[4:10], mult[4:10], shift[4:10] = bounds, 0, 1, 1
    relu[4:10] = [0, 0, 0, 1, 1, 1]
    return acc, bias, mult, shift, relu


def test_requantizer_matches_golden(rng) -> None:
    params = AcceleratorParams(L=4)
    dut = Requantizer(params)
    acc, bias, mult, shift, relu = _vectors(rng, 300)
    expected = [
        requantize(
            torch.from_numpy(acc[i] + bias[i]),
            torch.from_numpy(mult[i]),
            torch.from_numpy(shift[i]),
            bool(relu[i]),
        ).tolist()
        for i in range(len(acc))
    ]
    got = []

    async def testbench(ctx):
        ctx.set(dut.en, 1)
        for i in range(len(acc) + Requantizer.LATENCY):
            # Stall every seventh cycle: nothing may move while en is low.
            if i % 7 == 3:
                ctx.set(dut.en, 0)
                before = ctx.get(dut.y)
                await ctx.tick()
                assert ctx.get(dut.y) == before
                ctx.set(dut.en, 1)
            if i < len(acc):
                ctx.set(dut.valid, 1)
                ctx.set(dut.relu, int(relu[i]))
                ctx.set(dut.acc, acc[i].tolist())
                ctx.set(
                    dut.channels,
                    [
                        {"bias": int(b), "mult": int(m), "shift": int(s)}
                        for b, m, s in zip(bias[i], mult[i], shift[i], strict=True)
                    ],
                )
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if ctx.get(dut.y_valid):
                got.append([int(v) for v in ctx.get(dut.y)])

    simulate(dut, testbench)
    assert got == expected
