"""The requantization unit: per-channel multiply, round half up, shift, saturate, ReLU."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.params import ACC_BITS, MULT_BITS, SHIFT_BITS, AcceleratorParams
from hw.stages import PRODUCT_LATENCY, delayed, registered, registered_product

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
    150 MHz: the products of the biased total's low and high halves by ``mult`` (one hardware
    multiplier each, :func:`hw.stages.registered_product`); their sum; the shift by a multiple
    of ``2**FINE_BITS``; the rest of the shift; the rounding; the clamp into ``y``. The
    rounding uses ``(p + 2**(s-1)) >> s == ((p >> (s-1)) + 1) >> 1``, which needs no
    variable-width constant.
    ``shift`` must be at least 1 (the layer validation guarantees it).
    """

    #: Enabled clock edges from ``acc`` to ``y``: the half products, then the product, coarse
    #: shift, fine shift, rounding, clamp.
    LATENCY = PRODUCT_LATENCY + 5

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
        control_at_y = delayed(m, control, self.LATENCY - 1, en, "control")
        with m.If(en):
            m.d.sync += self.y_valid.eq(control_at_y.valid)
        for lane in range(self.params.L):
            channel = self.channels[lane]
            # The biased total, multiplied in two halves (registered_product's stages).
            total = (self.acc[lane] + channel.bias)[:ACC_BITS].as_signed()
            low = registered_product(
                m, platform, total[:HALF_BITS], channel.mult, en, f"low_{lane}"
            )
            high = registered_product(
                m, platform, total[HALF_BITS:].as_signed(), channel.mult, en, f"high_{lane}"
            )
            # The product: the halves' sum. Then the shift by a multiple of 2**FINE_BITS, and by
            # the rest: p >> (s - 1) in all. The shift's parts meet the values they shift.
            product = Signal(signed(PRODUCT_BITS), name=f"product_{lane}")
            with m.If(en):
                m.d.sync += product.eq((high << HALF_BITS) + low)
            amount = (channel.shift - 1)[:SHIFT_BITS]  # 0 .. SHIFT_MAX - 1
            coarse_amount = delayed(
                m, amount[FINE_BITS:], PRODUCT_LATENCY + 1, en, f"coarse_amount_{lane}"
            )
            fine_amount = delayed(m, amount[:FINE_BITS], PRODUCT_LATENCY + 2, en, f"fine_{lane}")
            coarse = registered(m, product >> (coarse_amount << FINE_BITS), en, f"coarse_{lane}")
            halved = registered(m, coarse >> fine_amount, en, f"halved_{lane}")
            # Round half up, r = (h + 1) >> 1, and beside it where r falls against the clamp's
            # bounds, decided on h so that the clamp into the output register is a small mux:
            # r > 127 iff h >= 255, r < 0 iff h <= -2, r < -128 iff h <= -258.
            rounded = registered(m, ((halved + 1) >> 1)[:8].as_signed(), en, f"rounded_{lane}")
            above = registered(m, halved >= 255, en, f"above_{lane}")
            negative = registered(m, halved <= -2, en, f"negative_{lane}")
            below = registered(m, halved <= -258, en, f"below_{lane}")
            low_bound = Mux(control_at_y.relu, 0, -128)
            too_low = Mux(control_at_y.relu, negative, below)
            clamped = Mux(above, 127, Mux(too_low, low_bound, rounded))
            with m.If(en):
                m.d.sync += self.y[lane].eq(clamped)
        return m
