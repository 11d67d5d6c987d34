"""The MAC array: L lanes, each D int8 multipliers feeding a 32-bit accumulator."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.params import ACC_BITS, AcceleratorParams

__all__ = ["MacArray"]


class MacArray(wiring.Component):
    """Lane ``l`` accumulates ``dot(codewords[l], x)`` over the blocks of one group.

    A beat is presented with ``valid``; ``first`` starts a new accumulation and ``last`` ends
    it. Two stages: the D products are registered, then summed into the accumulator. The lane
    totals sit in ``acc`` while ``result_valid`` is high, for exactly one enabled cycle. Every
    register advances only when ``en`` is high, so the whole array stalls as one.

    The accumulator is ``ACC_BITS`` wide and wraps; the layer validation in
    :mod:`golden.artifacts` guarantees that no valid layer reaches the wrap.
    """

    #: Enabled clock edges from a beat's inputs to its total in ``acc``: products, accumulator.
    LATENCY = 2

    def __init__(self, params: AcceleratorParams) -> None:
        self.params = params
        super().__init__(
            {
                "en": In(1),
                "valid": In(1),
                "first": In(1),
                "last": In(1),
                "codewords": In(data.ArrayLayout(params.codeword_layout, params.L)),
                "x": In(params.codeword_layout),
                "result_valid": Out(1),
                "acc": Out(data.ArrayLayout(signed(ACC_BITS), params.L)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        products = [
            [Signal(signed(16), name=f"product_{lane}_{i}") for i in range(params.D)]
            for lane in range(params.L)
        ]
        product_valid = Signal()
        product_first = Signal()
        product_last = Signal()
        with m.If(self.en):
            m.d.sync += [
                product_valid.eq(self.valid),
                product_first.eq(self.first),
                product_last.eq(self.last),
                self.result_valid.eq(product_valid & product_last),
            ]
            for lane in range(params.L):
                for i in range(params.D):
                    m.d.sync += products[lane][i].eq(self.codewords[lane][i] * self.x[i])
                with m.If(product_valid):
                    total = sum(products[lane])
                    with m.If(product_first):
                        m.d.sync += self.acc[lane].eq(total)
                    with m.Else():
                        m.d.sync += self.acc[lane].eq(self.acc[lane] + total)
        return m
