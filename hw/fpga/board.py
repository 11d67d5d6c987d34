"""A top level for place and route: the accelerator behind a dozen pins.

The accelerator's streams are hundreds of bits wide, more than any package has pins, and an
out-of-context run leaves the paths from its ports untimed (``out.ready`` alone decides
when the output queue drains). :class:`PinWrapper` drives every input of the accelerator (each
stream's payload and valid, ``out.ready``) from a register chain loaded bit-serially through one
pin, and folds every output (each stream's ready, ``out.valid`` and its payload) into
registered pins. So every path into and out of the accelerator starts and ends at a register,
as it would next to on-chip stream buffers, and nothing can be optimised away: each input bit
depends on the serial pin and each output bit reaches a pin.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import (
    Array,
    Cat,
    ClockSignal,
    Const,
    Instance,
    Module,
    ResetSignal,
    Signal,
    Value,
    signed,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from vq4all.hw.accelerator import Accelerator
from vq4all.hw.params import AcceleratorParams
from vq4all.hw.stages import MemoryWrite, registered

__all__ = ["ECP5", "FOLDED_PINS", "PinWrapper"]

#: Output pins that the accelerator's outputs are folded into.
FOLDED_PINS = 8

#: Operand width of an ECP5 sysDSP multiplier (MULT18X18D), signed.
ECP5_OPERAND_BITS = 18
#: An ECP5 block RAM (DP16KD) as a ROM: 1024 words of 18 bits, in the mode whose initial
#: contents are laid out one word per 20-bit field, 16 words per 320-bit INITVAL_nn.
BRAM_DEPTH, BRAM_WIDTH = 1024, 18
BRAM_INIT_WORDS, BRAM_INIT_FIELD = 16, 20


def _bram_init(words: list[int], piece: int) -> dict[str, Const]:
    """The ``INITVAL_nn`` parameters of a 1024 x 18 block holding bits ``18 * piece`` ..
    ``18 * piece + 17`` of ``words``."""
    mask = (1 << BRAM_WIDTH) - 1
    values = [(word >> (piece * BRAM_WIDTH)) & mask for word in words]
    values += [0] * (BRAM_DEPTH - len(values))
    params = {}
    for row in range(BRAM_DEPTH // BRAM_INIT_WORDS):
        chunk = values[row * BRAM_INIT_WORDS : (row + 1) * BRAM_INIT_WORDS]
        bits = sum(value << (i * BRAM_INIT_FIELD) for i, value in enumerate(chunk))
        params[f"p_INITVAL_{row:02X}"] = Const(bits, BRAM_INIT_WORDS * BRAM_INIT_FIELD)
    return params


def _bram_port(port: str, address) -> dict:
    """The clock, enables and word address of port ``port`` ("A" or "B") of a 1024 x 18
    block: the address on ``AD13..AD4``; ``AD1..AD0`` enable the two bytes of a write."""
    return {
        f"i_CLK{port}": ClockSignal(),
        f"i_CE{port}": 1,
        f"i_OCE{port}": 1,
        f"i_RST{port}": 0,
        **{f"i_CS{port}{bit}": 0 for bit in range(3)},
        **{f"i_AD{port}{bit}": int(bit < 2) for bit in range(4)},
        **{
            f"i_AD{port}{bit + 4}": address[bit] if bit < len(address) else 0
            for bit in range(BRAM_DEPTH.bit_length() - 1)
        },
    }


def _bram_read_port(port: str, address, data) -> dict:
    """Port ``port`` reading ``data`` at ``address``, through both of its registers."""
    return {
        **_bram_port(port, address),
        f"i_WE{port}": 0,
        **{f"i_DI{port}{bit}": 0 for bit in range(BRAM_WIDTH)},
        **{f"o_DO{port}{bit}": data[bit] for bit in range(BRAM_WIDTH)},
    }


def _bram_write_port(port: str, enable, address, data) -> dict:
    """Port ``port`` writing ``data`` (up to 18 bits) to ``address`` when ``enable`` is
    high."""
    return {
        **_bram_port(port, address),
        f"i_WE{port}": enable,
        **{f"i_DI{port}{bit}": data[bit] if bit < len(data) else 0 for bit in range(BRAM_WIDTH)},
    }


class ECP5:
    """The platform to elaborate the accelerator with for ECP5 place and route: the hooks of
    :mod:`vq4all.hw.stages`, built from the blocks' own registers.

    Yosys maps multiplications onto MULT18X18D blocks and memories onto DP16KD block RAMs but
    leaves their registers unused, so a stage would pay the routing to and from the block and
    its combinational delay (in nextpnr's timing for the -6 grade, 3.9 ns for a multiplier,
    about 6 ns for a block RAM's unregistered read) in one cycle. Here the multiplier's
    operands sit in its input registers and the product in its output register, a memory's
    read in the RAM's read register and its data in the RAM's output register. The cycle behaviour
    is that of the generic stages, which is what the simulations check; no simulation model of
    these blocks is available to check the instantiation itself.
    """

    def registered_memory(
        self,
        m: Module,
        *,
        width: int,
        depth: int,
        init: list[int],
        reads: list,
        name: str,
        write: MemoryWrite | None = None,
    ) -> list[Signal]:
        """The read and output registers of :func:`vq4all.hw.stages.registered_memory` in DP16KD
        block RAMs, 1024 x 18 each, as the blocks' own (``REGMODE OUTREG``). Without a
        write port each block serves two reads (ports A and B); with one, port A writes and
        each read has its own copy on port B. A deeper memory is banks of 1024 words, chosen
        by the address's high bits, delayed beside the data."""
        banks = -(-depth // BRAM_DEPTH)
        slices = -(-width // BRAM_WIDTH)
        word_bits = BRAM_DEPTH.bit_length() - 1
        reads = [Value.cast(address) for address in reads]
        data = [
            [Signal(slices * BRAM_WIDTH, name=f"{name}_{i}_bank{bank}") for bank in range(banks)]
            for i in range(len(reads))
        ]
        per_block = 1 if write is not None else 2
        for first in range(0, len(reads), per_block):
            served = range(first, min(first + per_block, len(reads)))
            for bank in range(banks):
                contents = init[bank * BRAM_DEPTH : (bank + 1) * BRAM_DEPTH]
                for piece in range(slices):
                    bits = slice(piece * BRAM_WIDTH, (piece + 1) * BRAM_WIDTH)
                    ports = {}
                    for port, i in zip("BA" if write is not None else "AB", served, strict=False):
                        ports |= _bram_read_port(port, reads[i][:word_bits], data[i][bank][bits])
                    if write is not None:
                        selected = write.en & (write.addr[word_bits:] == bank)
                        data_in = Value.cast(write.data)[bits]
                        ports |= _bram_write_port("A", selected, write.addr[:word_bits], data_in)
                    m.submodules[f"{name}_{first}_bank{bank}_slice{piece}"] = Instance(
                        "DP16KD",
                        p_DATA_WIDTH_A=BRAM_WIDTH,
                        p_DATA_WIDTH_B=BRAM_WIDTH,
                        p_REGMODE_A="OUTREG",
                        p_REGMODE_B="OUTREG",
                        p_GSR="DISABLED",
                        **_bram_init(contents, piece),
                        **ports,
                    )
        outputs = []
        for i, address in enumerate(reads):
            output = Signal(width, name=f"{name}_{i}")
            if banks == 1:
                m.d.comb += output.eq(data[i][0])
            else:
                bank = address[word_bits:]
                for stage in range(2):  # beside the read and output registers
                    bank = registered(m, bank, f"{name}_{i}_bank_{stage + 1}")
                m.d.comb += output.eq(Array(data[i])[bank])
            outputs.append(output)
        return outputs

    def registered_product(self, m: Module, a, b, name: str) -> Signal:
        a, b = Value.cast(a), Value.cast(b)
        product = Signal((a * b).shape(), name=f"{name}_block")
        operands = {}
        for port, value in (("A", a), ("B", b)):
            width = value.shape().width + (not value.shape().signed)
            if width > ECP5_OPERAND_BITS:
                raise ValueError(f"{name}: a {value.shape()} operand is wider than a MULT18X18D's")
            # Operands enter sign-extended (or zero-extended, for unsigned) to 18 signed bits.
            extended = Signal(signed(ECP5_OPERAND_BITS), name=f"{name}_{port.lower()}")
            m.d.comb += extended.eq(value)
            operands.update({f"i_{port}{bit}": extended[bit] for bit in range(len(extended))})
        result = Signal(signed(2 * ECP5_OPERAND_BITS), name=f"{name}_p")
        m.submodules[name] = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0",
            p_REG_INPUTB_CLK="CLK0",
            p_REG_OUTPUT_CLK="CLK0",
            p_GSR="DISABLED",
            i_SIGNEDA=1,
            i_SIGNEDB=1,
            i_SOURCEA=0,
            i_SOURCEB=0,
            i_CLK0=ClockSignal(),
            i_CE0=1,
            i_RST0=ResetSignal(),
            **{f"i_C{bit}": 0 for bit in range(ECP5_OPERAND_BITS)},
            **operands,
            **{f"o_P{bit}": result[bit] for bit in range(len(result))},
        )
        m.d.comb += product.eq(result)
        return product


class PinWrapper(wiring.Component):
    """The accelerator of ``params`` (and ``codewords`` in rom mode) with its inputs loaded
    through ``serial_in`` (one bit per cycle while ``shift`` is high) and its outputs XOR-folded
    into ``folded`` (registered)."""

    def __init__(self, params: AcceleratorParams, codewords: np.ndarray | None = None) -> None:
        self.accelerator = Accelerator(params, codewords)
        super().__init__({"serial_in": In(1), "shift": In(1), "folded": Out(FOLDED_PINS)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.accelerator = dut = self.accelerator
        inputs, outputs = [], []
        for _, member, value in dut.signature.flatten(dut):
            (inputs if member.flow == wiring.In else outputs).append(value)
        chain = Signal(len(Cat(*inputs)))
        with m.If(self.shift):
            m.d.sync += chain.eq(Cat(self.serial_in, chain[:-1]))
        m.d.comb += Cat(*inputs).eq(chain)
        bits = Cat(*outputs)
        registered = Signal(len(bits))
        m.d.sync += registered.eq(bits)
        folded = [0] * FOLDED_PINS
        for i in range(len(bits)):
            folded[i % FOLDED_PINS] ^= registered[i]
        m.d.sync += self.folded.eq(Cat(*folded))
        return m
