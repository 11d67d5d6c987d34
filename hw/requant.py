"""The requantization unit: per-channel multiply, round half up, shift, saturate, ReLU."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from vq4all.hw.params import MULT_BITS, SHIFT_BITS, AcceleratorParams
from vq4all.hw.stages import PRODUCT_LATENCY, delayed, registered, registered_product

__all__ = ["Requantizer"]

#: The biased total is multiplied in pieces of this many bits (the top one signed), each within
#: one hardware multiplier (an ECP5 MULT18X18D takes 18 signed bits): two for a 32-bit
#: accumulator, three for a 40-bit one.
PIECE_BITS = 16
#: The variable shift is done in two steps: by a multiple of 2**FINE_BITS, then by the rest.
FINE_BITS = 3


class Requantizer(wiring.Component):
    """``y = clamp(((acc + bias) * mult + 2**(shift-1)) >> shift, relu ? 0 : lo, hi)``, with
    ``[lo, hi]`` the activations' range (-128..127 for int8).

    Register stages, each short enough for an FPGA clock of
    150 MHz: the products of the biased total's pieces (:data:`PIECE_BITS`) by ``mult`` (one
    hardware multiplier each, :func:`vq4all.hw.stages.registered_product`); their sum; the shift by
    a multiple of ``2**FINE_BITS``; the rest of the shift; the rounding; the clamp into ``y``. The
    rounding uses ``(p + 2**(s-1)) >> s == ((p >> (s-1)) + 1) >> 1``, which needs no
    variable-width constant.
    ``shift`` must be at least 1 (the layer validation guarantees it).
    """

    #: Clock edges from ``acc`` to ``y``: the pieces' products, then the product, coarse
    #: shift, fine shift, rounding, clamp.
    LATENCY = PRODUCT_LATENCY + 5

    def __init__(self, params: AcceleratorParams) -> None:
        self.params = params
        super().__init__(
            {
                "valid": In(1),
                "relu": In(1),
                "acc": In(data.ArrayLayout(signed(params.acc_bits), params.L)),
                "channels": In(params.quant_layout),
                "y_valid": Out(1),
                "y": Out(params.out_layout),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        acc_bits, bits = self.params.acc_bits, self.params.activation_bits
        # (acc + bias) * mult: the total times a 16-bit unsigned multiplier, plus the rounding.
        product_bits = acc_bits + MULT_BITS + 1
        offsets = range(0, acc_bits, PIECE_BITS)
        lowest, highest = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        # The control and each lane's multiplier and shift travel beside the data.
        control = Signal(data.StructLayout({"valid": 1, "relu": 1}))
        m.d.comb += [control.valid.eq(self.valid), control.relu.eq(self.relu)]
        control_at_y = delayed(m, control, self.LATENCY - 1, "control")
        m.d.sync += self.y_valid.eq(control_at_y.valid)
        for lane in range(self.params.L):
            channel = self.channels[lane]
            # The biased total, multiplied in pieces (registered_product's stages): unsigned
            # ones, then the signed top.
            total = (self.acc[lane] + channel.bias)[:acc_bits].as_signed()
            pieces = [
                registered_product(
                    m,
                    platform,
                    total[offset:].as_signed()
                    if offset == offsets[-1]
                    else total[offset : offset + PIECE_BITS],
                    channel.mult,
                    f"piece{offset // PIECE_BITS}_{lane}",
                )
                for offset in offsets
            ]
            # The product: the pieces' sum. Then the shift by a multiple of 2**FINE_BITS, and by
            # the rest: p >> (s - 1) in all. The shift's parts meet the values they shift.
            product = Signal(signed(product_bits), name=f"product_{lane}")
            m.d.sync += product.eq(
                sum(piece << offset for piece, offset in zip(pieces, offsets, strict=True))
            )
            amount = (channel.shift - 1)[:SHIFT_BITS]  # 0 .. SHIFT_MAX - 1
            coarse_amount = delayed(
                m, amount[FINE_BITS:], PRODUCT_LATENCY + 1, f"coarse_amount_{lane}"
            )
            fine_amount = delayed(m, amount[:FINE_BITS], PRODUCT_LATENCY + 2, f"fine_{lane}")
            coarse = registered(m, product >> (coarse_amount << FINE_BITS), f"coarse_{lane}")
            halved = registered(m, coarse >> fine_amount, f"halved_{lane}")
            # Round half up, r = (h + 1) >> 1, and beside it where r falls against the clamp's
            # bounds, decided on h so that the clamp into the output register is a small mux:
            # r > hi iff h >= 2 hi + 1, r < 0 iff h <= -2, r < lo iff h <= 2 lo - 2 (for int8:
            # h >= 255, h <= -2, h <= -258).
            rounded = registered(m, ((halved + 1) >> 1)[:bits].as_signed(), f"rounded_{lane}")
            above = registered(m, halved >= 2 * highest + 1, f"above_{lane}")
            negative = registered(m, halved <= -2, f"negative_{lane}")
            below = registered(m, halved <= 2 * lowest - 2, f"below_{lane}")
            low_bound = Mux(control_at_y.relu, 0, lowest)
            too_low = Mux(control_at_y.relu, negative, below)
            clamped = Mux(above, highest, Mux(too_low, low_bound, rounded))
            m.d.sync += self.y[lane].eq(clamped)
        return m
