"""The requantization unit: per-channel multiply, round half up, shift, saturate, ReLU."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.params import ACC_BITS, MULT_BITS, AcceleratorParams

__all__ = ["Requantizer"]

#: (acc + bias) * mult: a 32-bit total times a 16-bit unsigned multiplier, plus the rounding.
PRODUCT_BITS = ACC_BITS + MULT_BITS + 1


class Requantizer(wiring.Component):
    """``y = clamp(((acc + bias) * mult + 2**(shift-1)) >> shift, relu ? 0 : -128, 127)``.

    Two stages, advancing when ``en`` is high: the product is registered, then rounded,
    shifted and clamped into ``y``. The rounding uses
    ``(p + 2**(s-1)) >> s == ((p >> (s-1)) + 1) >> 1``, which needs no variable-width constant.
    ``shift`` must be at least 1 (the layer validation guarantees it).
    """

    #: Enabled clock edges from ``acc`` to ``y``: the product, then rounding and clamping.
    LATENCY = 2

    def __init__(self, params: AcceleratorParams) -> None:
        self.params = params
        super().__init__(
            {
                "en": In(1),
                "valid": In(1),
                "relu": In(1),
                "acc": In(data.ArrayLayout(signed(ACC_BITS), params.L)),
                "channels": In(params.quant_layout),
                "y_valid": Out(1),
                "y": Out(params.out_layout),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        lanes = self.params.L
        products = [Signal(signed(PRODUCT_BITS), name=f"product_{lane}") for lane in range(lanes)]
        shifts = [
            Signal.like(self.channels[lane].shift, name=f"shift_{lane}") for lane in range(lanes)
        ]
        product_valid = Signal()
        product_relu = Signal()
        with m.If(self.en):
            m.d.sync += [
                product_valid.eq(self.valid),
                product_relu.eq(self.relu),
                self.y_valid.eq(product_valid),
            ]
            for lane in range(lanes):
                channel = self.channels[lane]
                total = (self.acc[lane] + channel.bias)[:ACC_BITS].as_signed()
                m.d.sync += [
                    products[lane].eq(total * channel.mult),
                    shifts[lane].eq(channel.shift),
                ]
                halved = products[lane] >> (shifts[lane] - 1)[: len(shifts[lane])]
                rounded = Signal(signed(PRODUCT_BITS), name=f"rounded_{lane}")
                m.d.comb += rounded.eq((halved + 1) >> 1)
                low = Mux(product_relu, 0, -128)
                clamped = Mux(rounded > 127, 127, Mux(rounded < low, low, rounded))
                m.d.sync += self.y[lane].eq(clamped)
        return m
