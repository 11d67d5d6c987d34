"""Parameter validation, and the hardware widths against the golden numerics contract."""

from __future__ import annotations

import pytest

import vq4all.golden.numerics as golden
import vq4all.hw.params as hw
from vq4all.hw.params import AcceleratorParams


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"K": 1000}, r"K must be a power of two >= 2, not 1000"),
        ({"K": 1}, r"K must be a power of two >= 2, not 1"),
        ({"D": 0}, r"D must be a positive integer, not 0"),
        ({"L": 2.5}, r"L must be a positive integer, not 2.5"),
        ({"mode": "flash"}, r"mode must be one of \('rom', 'sram'\), not 'flash'"),
        ({"max_inputs": 1 << 17}, r"max_inputs=131072 can overflow the 32-bit accumulator"),
        (
            {"max_inputs": 1 << 17, "activation_bits": 16},
            r"max_inputs=131072 can overflow the 40-bit accumulator",
        ),
        ({"activation_bits": 12}, r"activation_bits must be one of \(8, 16\), not 12"),
        ({"max_columns": 0}, r"max_columns must be a positive integer, not 0"),
    ],
)
def test_rejects_bad_parameters(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        AcceleratorParams(**kwargs)


@pytest.mark.parametrize("bits", [8, 16])
def test_widths_implement_the_golden_contract(bits: int) -> None:
    assert hw.ACTIVATION_BITS == golden.ACTIVATION_BITS
    params = AcceleratorParams(activation_bits=bits)
    assert golden.accumulator_range(bits) == (
        -(2 ** (params.acc_bits - 1)),
        2 ** (params.acc_bits - 1) - 1,
    )
    assert golden.activation_range(bits) == (
        -(2 ** (params.act_layout.elem_shape.width - 1)),
        2 ** (params.out_layout.elem_shape.width - 1) - 1,
    )
    assert golden.MULT_MAX == 2**hw.MULT_BITS - 1
    assert golden.SHIFT_MAX == hw.SHIFT_MAX < 2**hw.SHIFT_BITS
    assert golden.product_max(bits) == params.product_max


def test_derived_sizes() -> None:
    params = AcceleratorParams(
        K=65536, D=8, L=4, max_inputs=1027, max_outputs=257, max_columns=1000
    )
    assert (params.index_bits, params.max_blocks, params.max_groups) == (16, 129, 65)
    assert params.index_layout.size == 4 * 16
    assert params.quant_layout.size == 4 * (32 + 16 + 6)
    # last_step 0..1026, last_group 0..64, last_unit 0..999, relu, packed.
    assert params.config_layout.size == 11 + 7 + 10 + 1 + 1
    # A linear layer: one column, 3 groups of L channels, 9 blocks of D.
    linear = params.tiling(9, 70)
    assert (linear.packed, linear.units, linear.groups, linear.steps, linear.beats) == (
        False,
        1,
        3,
        9,
        27,
    )
    # MobileNetV2's first depthwise layer: 32 channels of 9 inputs over 112 x 112 pixels, one
    # lane per channel and one multiplier per pixel, every slot full.
    depthwise = params.tiling(1, 9, conv_groups=32, pixels=112 * 112)
    assert (depthwise.packed, depthwise.units, depthwise.groups, depthwise.steps) == (
        True,
        112 * 112 // 8,
        8,
        9,
    )
    assert depthwise.beats * params.L * params.D == 32 * 9 * 112 * 112
    assert depthwise.out_beats == 112 * 112 * 8
    # Column-packed only with at least D inputs (a group's D results drain meanwhile) and
    # only where it saves cycles: a 1x1 layer over 49 pixels packs 7 of 56 slots with padding.
    assert not params.tiling(16, 7, pixels=64).packed
    assert not params.tiling(32, 64, pixels=49).packed
