"""The codebook memory (decode stage) in Amaranth's simulator, in both modes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.amaranth_sim import simulate
from vq4all.hw.codebook import CodebookMemory
from vq4all.hw.params import AcceleratorParams


@pytest.mark.parametrize("mode", ["rom", "sram"])
def test_lanes_decode_indices(mode, codebook, rng) -> None:
    params = AcceleratorParams(K=codebook.K, D=codebook.D, L=3, mode=mode)
    dut = CodebookMemory(params, codebook.codewords if mode == "rom" else None)
    addresses = rng.integers(0, params.K, size=(40, params.L))
    got = []

    async def testbench(ctx):
        if mode == "sram":
            ctx.set(dut.write_en, 1)
            for row, codeword in enumerate(codebook.codewords.tolist()):
                ctx.set(dut.write_addr, row)
                ctx.set(dut.write_data, codeword)
                await ctx.tick()
            ctx.set(dut.write_en, 0)
        # An address a cycle, then LATENCY - 1 more to flush the last ones out.
        flush = [np.zeros(params.L, dtype=int)] * (CodebookMemory.LATENCY - 1)
        for lanes in [*addresses, *flush]:
            ctx.set(dut.addr, lanes.tolist())
            await ctx.tick()
            got.append([[int(v) for v in lane] for lane in ctx.get(dut.codewords)])

    simulate(dut, testbench)
    decoded = np.array(got[CodebookMemory.LATENCY - 1 :])
    assert np.array_equal(decoded, codebook.codewords[addresses])


def test_rejects_bad_codewords(codebook) -> None:
    with pytest.raises(ValueError, match="rom mode needs the codewords"):
        CodebookMemory(AcceleratorParams(K=256, D=8))
    with pytest.raises(ValueError, match=r"codewords of shape \(256, 8\) do not match K=256, D=4"):
        CodebookMemory(AcceleratorParams(K=256, D=4), codebook.codewords)
    with pytest.raises(ValueError, match="must be an int8 numpy array"):
        CodebookMemory(AcceleratorParams(K=256, D=8), codebook.codewords.astype(np.int16))
    with pytest.raises(ValueError, match="sram mode takes no codewords"):
        CodebookMemory(AcceleratorParams(K=256, D=8, mode="sram"), codebook.codewords)
