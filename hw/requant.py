"""The requantization unit: per-channel multiply, round half up, shift, saturate, ReLU."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.mac import registered
from hw.params import ACC_BITS, MULT_BITS, SHIFT_BITS, AcceleratorParams

__all__ = ["Requantizer"]

#: (acc + bias) * mult: a 32-bit total times a 16-bit unsigned multiplier, plus the rounding.
PRODUCT_BITS = ACC_BITS + MULT_BITS + 1
#: The total is multiplied in two halves, each one hardware multiplier wide.
HALF_BITS = ACC_BITS // 2
#: The variable shift is done in two steps: by a multiple of 2**FINE_BITS, then by the rest.
FINE_BITS = 3


class Requantizer(wiring.Component):
    """``y = clamp(((acc + bias) * mult + 2**(shift-1)) >> shift, relu ? 0 : -128, 127)``.

    Register stages, advancing when ``en`` is high, each short enough for an FPGA clock of
    150 MHz: the biased total; the products of its low and high halves by ``mult`` (one
    hardware multiplier each); their sum; the shift by a multiple of ``2**FINE_BITS``; the
    rest of the shift; the rounding; the clamp into ``y``. The rounding uses
    ``(p + 2**(s-1)) >> s == ((p >> (s-1)) + 1) >> 1``, which needs no variable-width constant.
    ``shift`` must be at least 1 (the layer validation guarantees it).
    """

    #: Enabled clock edges from ``acc`` to ``y``: bias, half products, product, coarse shift,
    #: fine shift, rounding, clamp.
    LATENCY = 7

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
        en = self.en
        # The control and each lane's multiplier and shift travel beside the data.
        control = Signal(data.StructLayout({"valid": 1, "relu": 1}))
        m.d.comb += [control.valid.eq(self.valid), control.relu.eq(self.relu)]
        controls = [control]
        for stage in range(self.LATENCY - 1):
            controls.append(registered(m, controls[-1], en, f"control_{stage + 1}"))
        with m.If(en):
            m.d.sync += self.y_valid.eq(controls[-1].valid)
        for lane in range(self.params.L):
            channel = self.channels[lane]
            # 1: the biased total, and the shift split into its coarse and fine parts.
            total = registered(
                m, (self.acc[lane] + channel.bias)[:ACC_BITS].as_signed(), en, f"total_{lane}"
            )
            mult = registered(m, channel.mult, en, f"mult_{lane}")
            amount = (channel.shift - 1)[:SHIFT_BITS]  # 0 .. SHIFT_MAX - 1
            coarse_amount = registered(m, amount[FINE_BITS:], en, f"coarse_{lane}_1")
            fine_amount = registered(m, amount[:FINE_BITS], en, f"fine_{lane}_1")
            # 2: the two half products. 3: the product.
            low = registered(m, total[:HALF_BITS] * mult, en, f"low_{lane}")
            high = registered(m, total[HALF_BITS:].as_signed() * mult, en, f"high_{lane}")
            fine_2 = registered(m, fine_amount, en, f"fine_{lane}_2")
            coarse_2 = registered(m, coarse_amount, en, f"coarse_{lane}_2")
            product = Signal(signed(PRODUCT_BITS), name=f"product_{lane}")
            with m.If(en):
                m.d.sync += product.eq((high << HALF_BITS) + low)
            fine_3 = registered(m, fine_2, en, f"fine_{lane}_3")
            coarse_3 = registered(m, coarse_2, en, f"coarse_{lane}_3")
            # 4: shift by a multiple of 2**FINE_BITS. 5: by the rest: p >> (s - 1) in all.
            coarse = registered(m, product >> (coarse_3 << FINE_BITS), en, f"coarse_shifted_{lane}")
            fine_4 = registered(m, fine_3, en, f"fine_{lane}_4")
            halved = registered(m, coarse >> fine_4, en, f"halved_{lane}")
            # 6: round half up. 7: clamp into the output register.
            rounded = registered(m, (halved + 1) >> 1, en, f"rounded_{lane}")
            low_bound = Mux(controls[-1].relu, 0, -128)
            clamped = Mux(rounded > 127, 127, Mux(rounded < low_bound, low_bound, rounded))
            with m.If(en):
                m.d.sync += self.y[lane].eq(clamped)
        return m
