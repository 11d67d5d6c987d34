"""The MAC array: L lanes, each D multipliers (int8 codeword entries by activations) feeding an
accumulator."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from vq4all.hw.params import AcceleratorParams
from vq4all.hw.stages import PRODUCT_LATENCY, delayed, registered, registered_product

__all__ = ["MacArray"]

#: Products summed combinationally per adder-tree register stage (two adder levels).
TREE_FAN_IN = 4


class MacArray(wiring.Component):
    """Lane ``l`` accumulates ``dot(codewords[l], x)`` over the blocks of one group.

    A beat is presented with ``valid``; ``first`` starts a new accumulation and ``last`` ends
    it. Register stages, so that each multiplier has registers on both sides and no stage holds
    more than two adder levels: the D products (:func:`vq4all.hw.stages.registered_product`), the
    sums of groups of :data:`TREE_FAN_IN` products, the lane total, the accumulator. The lane
    totals sit in ``acc`` while ``result_valid`` is high, for exactly one cycle.

    The accumulator is ``params.acc_bits`` wide and wraps; the layer validation in
    :mod:`vq4all.golden.layer` guarantees that no valid layer reaches the wrap.
    """

    #: Clock edges from a beat's inputs to its total in ``acc``: the products, the
    #: group sums, the lane total, the accumulator.
    LATENCY = PRODUCT_LATENCY + 3

    def __init__(self, params: AcceleratorParams) -> None:
        self.params = params
        super().__init__(
            {
                "valid": In(1),
                "first": In(1),
                "last": In(1),
                "codewords": In(data.ArrayLayout(params.codeword_layout, params.L)),
                "x": In(params.act_layout),
                "result_valid": Out(1),
                "acc": Out(data.ArrayLayout(signed(params.acc_bits), params.L)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        control = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1}))
        m.d.comb += [control.valid.eq(self.valid), control.first.eq(self.first)]
        m.d.comb += control.last.eq(self.last)
        # The products (registered_product's stages).
        products = [
            [
                registered_product(
                    m, platform, self.codewords[lane][i], self.x[i], f"product_{lane}_{i}"
                )
                for i in range(params.D)
            ]
            for lane in range(params.L)
        ]
        # The adder tree, two adder levels per stage.
        totals = []
        for lane in range(params.L):
            groups = [
                registered(
                    m,
                    sum(products[lane][i : i + TREE_FAN_IN]),
                    f"group_{lane}_{i // TREE_FAN_IN}",
                )
                for i in range(0, params.D, TREE_FAN_IN)
            ]
            totals.append(registered(m, sum(groups), f"total_{lane}"))
        control_at_total = delayed(m, control, self.LATENCY - 1, "control")
        # The accumulator.
        m.d.sync += self.result_valid.eq(control_at_total.valid & control_at_total.last)
        with m.If(control_at_total.valid):
            for lane in range(params.L):
                with m.If(control_at_total.first):
                    m.d.sync += self.acc[lane].eq(totals[lane])
                with m.Else():
                    m.d.sync += self.acc[lane].eq(self.acc[lane] + totals[lane])
        return m
