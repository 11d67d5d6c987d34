"""The requantization unit in Amaranth's simulator against the golden requantize()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.amaranth_sim import simulate
from vq4all.golden.numerics import (
    MULT_MAX,
    SHIFT_MAX,
    accumulator_range,
    activation_range,
    requantize,
)
from vq4all.hw.params import AcceleratorParams
from vq4all.hw.requant import Requantizer


def _vectors(rng: np.random.Generator, count: int, bits: int):
    """Random 4-lane vectors for ``bits``-wide activations; the first four reach the extremes:
    the largest totals of both signs (acc + bias = the accumulator's largest and lowest) with
    the largest multiplier, at shifts 1 to 48; the next six land on both sides of every clamp
    bound."""
    acc_min, acc_max = accumulator_range(bits)
    lowest, highest = activation_range(bits)
    spread = 2 ** (bits + 16)
    acc = rng.integers(-spread, spread, size=(count, 4))
    bias = rng.integers(-spread // 16, spread // 16, size=(count, 4))
    mult = rng.integers(0, MULT_MAX + 1, size=(count, 4))
    shift = rng.integers(1, SHIFT_MAX + 1, size=(count, 4))
    relu = rng.integers(0, 2, size=count)
    acc[:4] = [acc_max - 7, acc_min + 9, 0, -1]
    bias[:4] = [7, -9, 0, 0]
    mult[:4] = MULT_MAX
    shift[:4] = [[1], [SHIFT_MAX], [31], [47]]
    # Then totals on either side of each clamp bound, rounded at shift 1 (y = (t + 1) >> 1),
    # with and without ReLU.
    top, bottom = 2 * highest + 1, 2 * lowest - 2  # 255 and -258 for int8
    bounds = [
        [top - 2, top - 1, top, top + 1],
        [-3, -2, -1, 0],
        [bottom - 1, bottom, bottom + 1, bottom + 2],
    ] * 2
    acc[4:10], bias[4:10], mult[4:10], shift[4:10] = bounds, 0, 1, 1
    relu[4:10] = [0, 0, 0, 1, 1, 1]
    return acc, bias, mult, shift, relu


@pytest.mark.parametrize("bits", [8, 16], ids=["int8", "int16"])
def test_requantizer_matches_golden(rng, bits: int) -> None:
    params = AcceleratorParams(L=4, activation_bits=bits)
    dut = Requantizer(params)
    acc, bias, mult, shift, relu = _vectors(rng, 300, bits)
    expected = [
        requantize(
            torch.from_numpy(acc[i] + bias[i]),
            torch.from_numpy(mult[i]),
            torch.from_numpy(shift[i]),
            bool(relu[i]),
            bits,
        ).tolist()
        for i in range(len(acc))
    ]
    got = []

    async def testbench(ctx):
        for i in range(len(acc) + Requantizer.LATENCY):
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
