# amaranth: UnusedElaboratable=no
"""The FPGA top level and the ECP5 platform's register stages: what the synthesised netlist is
built from. No simulation model of the ECP5 blocks is available, so these check the
instantiation: the blocks' registers in use, the ROM contents laid out word by word, every
multiplier in a block."""

from __future__ import annotations

import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned

from vq4all.golden.synthetic import random_codebook
from vq4all.hw.codebook import pack_codewords
from vq4all.hw.fpga.board import (
    BRAM_DEPTH,
    BRAM_INIT_FIELD,
    BRAM_WIDTH,
    ECP5,
    PinWrapper,
    _bram_init,
)
from vq4all.hw.params import AcceleratorParams


def _instances(text: str, cell: str) -> list[str]:
    """The parameter and port text of each instance of ``cell`` in Verilog ``text``."""
    return re.findall(rf"\b{cell} #\((.*?)\);\n", text, flags=re.S)


def test_rom_contents_are_laid_out_word_by_word() -> None:
    """Decoding every INITVAL of every bank and slice gives back the codewords."""
    codebook = random_codebook(2048, 8, seed=5)  # two banks
    words = pack_codewords(codebook.codewords)
    slices = -(-64 // BRAM_WIDTH)
    decoded = [0] * len(words)
    for bank in range(2):
        for piece in range(slices):
            params = _bram_init(words[bank * BRAM_DEPTH : (bank + 1) * BRAM_DEPTH], piece)
            assert len(params) == 64
            for name, value in params.items():
                row = int(name.removeprefix("p_INITVAL_"), 16)
                for i in range(16):
                    address = bank * BRAM_DEPTH + 16 * row + i
                    field = (value.value >> (i * BRAM_INIT_FIELD)) & ((1 << BRAM_WIDTH) - 1)
                    if address < len(words):
                        decoded[address] |= field << (piece * BRAM_WIDTH)
                    else:
                        assert field == 0
    assert decoded == words


@pytest.mark.parametrize(
    ("bits", "pieces", "buffer_slices", "queue_slices"), [(8, 2, 4, 2), (16, 3, 8, 4)]
)
def test_the_ecp5_netlist_uses_the_blocks_registers(
    bits, pieces, buffer_slices, queue_slices
) -> None:
    params = AcceleratorParams(
        K=2048, D=8, L=4, max_inputs=64, max_outputs=16, activation_bits=bits
    )
    codebook = random_codebook(params.K, params.D, seed=5)
    text = verilog.convert(
        PinWrapper(params, codebook.codewords), name="top", platform=ECP5(), emit_src=False
    )
    multipliers = _instances(text, "MULT18X18D")
    # L x D products (8 x 16 bits fit one block too) and the requantizer's products of the
    # 16-bit pieces of its 32- or 40-bit total, per lane.
    assert len(multipliers) == params.L * params.D + pieces * params.L
    for block in multipliers:
        for register in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
            assert re.search(rf'\.{register}\("CLK0"\)', block), register
    rams = _instances(text, "DP16KD")
    # The ROM: 2 banks x 4 slices, one copy per two lanes; the activation buffer: D x bits
    # wide, and the output queue: L x bits wide, in 18-bit slices.
    assert len(rams) == 2 * 4 * 2 + buffer_slices + queue_slices
    for block in rams:
        assert '.REGMODE_A("OUTREG")' in block and '.REGMODE_B("OUTREG")' in block
    # No multiplication is left for Yosys to map without its registers.
    assert not re.search(r"\$mul\b|\s\*\s", text)


def test_operands_wider_than_a_multiplier_are_refused() -> None:
    m = Module()
    with pytest.raises(ValueError, match="wider than a MULT18X18D"):
        ECP5().registered_product(m, Signal(unsigned(18)), Signal(signed(8)), "p")
    ECP5().registered_product(m, Signal(signed(18)), Signal(unsigned(17)), "q")


def test_unused_rom_words_read_zero() -> None:
    """A ROM shorter than its blocks is padded with zeros, as an Amaranth memory's init is."""
    params = _bram_init([1, 2, 3], 0)
    assert params["p_INITVAL_00"].value == 1 | 2 << 20 | 3 << 40
    assert all(value.value == 0 for name, value in params.items() if name != "p_INITVAL_00")
