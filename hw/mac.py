"""The MAC array: L lanes of D multipliers (int8 codeword entries by activations), each lane
summing its products into one accumulator (a dot product) or keeping each product's own
(D packed columns)."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from vq4all.hw.params import AcceleratorParams
from vq4all.hw.stages import PRODUCT_LATENCY, delayed, registered, registered_product

__all__ = ["MacArray"]

#: Products summed combinationally per adder-tree register stage (two adder levels).
TREE_FAN_IN = 4


class MacArray(wiring.Component):
    """Lane ``l`` accumulates over the beats of one group, ``first`` to ``last``:

    - a dot-product beat (``packed`` low): ``dot(codewords[l], x[l])`` into one total;
    - a packed beat: ``codewords[l][entry] * x[l][i]`` into column ``i``'s own total, for the
      D columns ``i``.

    The group's totals leave one column per cycle, ``result_valid`` high with ``acc`` holding
    each lane's total of that column: the one total of a dot-product group, or the D columns of
    a packed group on D consecutive cycles, the first with ``result_first`` high (and
    ``result_next`` high the cycle before it). The group
    after a packed one must finish at least D cycles after it, so that its columns have left
    (the accelerator sees to it: a packed group takes at least D beats, and the next run waits).

    Register stages, so that each multiplier has registers on both sides and no stage holds
    more than two adder levels: the operands (the codeword entry each multiplier takes), the D
    products (:func:`vq4all.hw.stages.registered_product`), the sums of groups of
    :data:`TREE_FAN_IN` products (beside them, the products again), the lane total, the
    accumulators, the result. The accumulators are ``params.acc_bits`` wide and wrap; the layer
    validation in :mod:`vq4all.golden.layer` guarantees that no valid layer reaches the wrap.
    """

    #: Clock edges from a beat's inputs to its group's first result in ``acc``: the operands,
    #: the products, the group sums, the lane total, the accumulator, the result.
    LATENCY = 1 + PRODUCT_LATENCY + 4

    def __init__(self, params: AcceleratorParams) -> None:
        self.params = params
        super().__init__(
            {
                "valid": In(1),
                "first": In(1),
                "last": In(1),
                "packed": In(1),
                "entry": In(unsigned(max(1, (params.D - 1).bit_length()))),
                "codewords": In(data.ArrayLayout(params.codeword_layout, params.L)),
                "x": In(params.act_beat_layout),
                "result_valid": Out(1),
                "result_first": Out(1),
                "result_next": Out(1),
                "acc": Out(data.ArrayLayout(signed(params.acc_bits), params.L)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        lanes, width = range(params.L), range(params.D)
        control = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "packed": 1}))
        m.d.comb += [
            control.valid.eq(self.valid),
            control.first.eq(self.first),
            control.last.eq(self.last),
            control.packed.eq(self.packed),
        ]
        # The operands: each multiplier's codeword entry, its own (a dot product) or the beat's
        # entry (packed columns), registered beside the activations.
        # (An Array's index is a multiplexer; a View's would be a multiplied offset.)
        selected = [
            Array(self.codewords[lane][i] for i in width)[self.entry]
            if params.D > 1
            else self.codewords[lane][0]
            for lane in lanes
        ]
        entries = [
            [
                registered(
                    m,
                    Mux(self.packed, selected[lane], self.codewords[lane][i]),
                    f"operand_{lane}_{i}",
                )
                for i in width
            ]
            for lane in lanes
        ]
        x = registered(m, self.x, "x")
        products = [
            [
                registered_product(m, platform, entries[lane][i], x[lane][i], f"product_{lane}_{i}")
                for i in width
            ]
            for lane in lanes
        ]
        # The adder tree, two adder levels per stage, and beside it each product for packed
        # columns.
        totals, columns = [], []
        for lane in lanes:
            groups = [
                registered(
                    m,
                    sum(products[lane][i : i + TREE_FAN_IN]),
                    f"group_{lane}_{i // TREE_FAN_IN}",
                )
                for i in range(0, params.D, TREE_FAN_IN)
            ]
            totals.append(registered(m, sum(groups), f"total_{lane}"))
            columns.append([delayed(m, products[lane][i], 2, f"column_{lane}_{i}") for i in width])
        at_total = delayed(m, control, self.LATENCY - 2, "control")
        # The accumulators: column 0 takes the lane total of a dot product.
        acc = [
            [Signal(signed(params.acc_bits), name=f"acc_{lane}_{i}") for i in width]
            for lane in lanes
        ]
        with m.If(at_total.valid):
            for lane in lanes:
                for i in width:
                    addend = columns[lane][i]
                    if i == 0:
                        addend = Mux(at_total.packed, columns[lane][0], totals[lane])
                    with m.If(at_total.first):
                        m.d.sync += acc[lane][i].eq(addend)
                    with m.Else():
                        m.d.sync += acc[lane][i].eq(acc[lane][i] + addend)
        # The result: column 0 of a finished group, then (packed) the other D - 1 columns from a
        # copy, one per cycle, while the accumulators take the next group.
        done = registered(m, at_total.valid & at_total.last, "done")
        m.d.comb += self.result_next.eq(done)
        done_packed = registered(m, at_total.packed, "done_packed")
        waiting = [
            [Signal(signed(params.acc_bits), name=f"waiting_{lane}_{i}") for i in width[1:]]
            for lane in lanes
        ]
        left = Signal(range(max(2, params.D)), name="columns_left")
        m.d.sync += [self.result_valid.eq(done | (left != 0)), self.result_first.eq(done)]
        with m.If(done):
            m.d.sync += [self.acc[lane].eq(acc[lane][0]) for lane in lanes]
            if params.D > 1:
                m.d.sync += left.eq(Mux(done_packed, params.D - 1, 0))
                for lane in lanes:
                    m.d.sync += [waiting[lane][i - 1].eq(acc[lane][i]) for i in width[1:]]
        if params.D > 1:
            with m.Elif(left != 0):
                m.d.sync += left.eq(left - 1)
                for lane in lanes:
                    m.d.sync += self.acc[lane].eq(waiting[lane][0])
                    m.d.sync += [waiting[lane][i - 1].eq(waiting[lane][i]) for i in width[1:-1]]
        return m
