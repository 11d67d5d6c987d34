"""A top level for place and route: the accelerator behind a dozen pins.

The accelerator's streams are hundreds of bits wide, more than any package has pins, and an
out-of-context run leaves the paths from its ports untimed (``out.ready`` alone fans out to
every register's clock enable). :class:`PinWrapper` drives every input of the accelerator (each
stream's payload and valid, ``out.ready``) from a register chain loaded bit-serially through one
pin, and folds every output (each stream's ready, ``out.valid`` and its payload) into
registered pins. So every path into and out of the accelerator starts and ends at a register,
as it would next to on-chip stream buffers, and nothing can be optimised away: each input bit
depends on the serial pin and each output bit reaches a pin.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.accelerator import Accelerator
from hw.params import AcceleratorParams

__all__ = ["FOLDED_PINS", "PinWrapper"]

#: Output pins that the accelerator's outputs are folded into.
FOLDED_PINS = 8


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
