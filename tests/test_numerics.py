"""The golden numerics against independent float computations and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vq4all.golden.numerics import (
    accumulator_range,
    activation_range,
    decode,
    global_average,
    requantize,
    vq_conv2d,
    vq_gemm,
)
from vq4all.golden.synthetic import random_activations

WIDTHS = pytest.mark.parametrize("bits", [8, 16], ids=["int8", "int16"])


def test_requantize_rounds_half_up_and_saturates() -> None:
    # acc * mult / 2**shift: 5/2 -> 3, -5/2 -> -2 (half up), 7/4 -> 2, -7/4 -> -2.
    acc = torch.tensor([5, -5, 7, -7, 1000, -1000, -3], dtype=torch.int32)
    mult = torch.tensor([1, 1, 1, 1, 1, 1, 1], dtype=torch.int32)
    shift = torch.tensor([1, 1, 2, 2, 1, 1, 1], dtype=torch.int32)
    assert requantize(acc, mult, shift, relu=False).tolist() == [3, -2, 2, -2, 127, -128, -1]
    assert requantize(acc, mult, shift, relu=True).tolist() == [3, 0, 2, 0, 127, 0, 0]
    wide = requantize(acc * 100, mult, shift, relu=False, bits=16)
    assert wide.dtype == torch.int16
    assert wide.tolist() == [250, -250, 175, -175, 32767, -32768, -150]


@WIDTHS
def test_requantize_matches_float_rounding(rng: np.random.Generator, bits: int) -> None:
    low, high = accumulator_range(bits)
    acc = torch.from_numpy(rng.integers(low, high + 1, size=4096))
    mult = torch.from_numpy(rng.integers(0, 2**16, size=4096).astype(np.int32))
    shift = torch.from_numpy(rng.integers(1, 49, size=4096).astype(np.int32))
    lowest, highest = activation_range(bits)
    # Python's integers are exact at any size: floor((a * m + 2**(s-1)) / 2**s).
    exact = [
        max(lowest, min(highest, (a * m + 2 ** (s - 1)) // 2**s))
        for a, m, s in zip(acc.tolist(), mult.tolist(), shift.tolist(), strict=True)
    ]
    assert requantize(acc, mult, shift, relu=False, bits=bits).tolist() == exact


@WIDTHS
def test_gemm_equals_float_matmul_with_zero_padding(
    codebook, rng: np.random.Generator, bits: int
) -> None:
    cb = torch.from_numpy(codebook.codewords)
    indices = torch.from_numpy(rng.integers(0, codebook.K, size=(7, 5), dtype=np.int32))
    bias = torch.from_numpy(rng.integers(-1000, 1000, size=7, dtype=np.int32))
    x = torch.from_numpy(random_activations(rng, (3, 37), bits=bits))
    weights = cb.double()[indices.long()].reshape(7, 40)[:, :37]
    # float64 is exact here: every sum is below 2**53.
    expected = x.double() @ weights.T + bias.double()
    assert torch.equal(vq_gemm(cb, indices, bias, x).double(), expected)


def test_gemm_takes_int8_or_int16_activations_only(codebook) -> None:
    cb = torch.from_numpy(codebook.codewords)
    indices = torch.zeros((2, 5), dtype=torch.int32)
    with pytest.raises(ValueError, match="activations must be int8 or int16, not torch.int32"):
        vq_gemm(cb, indices, torch.zeros(2), torch.zeros((1, 40), dtype=torch.int32))


def test_int16_global_average_keeps_its_dtype_and_rounds_half_up() -> None:
    x = torch.tensor([[[[32767, 32766]], [[-32768, -32767]]]], dtype=torch.int16)
    mean = global_average(x)
    assert mean.dtype == torch.int16
    assert mean.tolist() == [[32767, -32767]]


def test_gemm_rejects_inputs_that_do_not_fit_the_blocks(codebook) -> None:
    cb = torch.from_numpy(codebook.codewords)
    indices = torch.zeros((2, 5), dtype=torch.int32)
    with pytest.raises(ValueError, match="do not match 5 blocks"):
        vq_gemm(
            cb, indices, torch.zeros(2, dtype=torch.int32), torch.zeros((1, 41), dtype=torch.int8)
        )
    with pytest.raises(ValueError, match="do not match 5 blocks"):
        vq_gemm(
            cb, indices, torch.zeros(2, dtype=torch.int32), torch.zeros((1, 32), dtype=torch.int8)
        )


@pytest.mark.parametrize(
    ("channels", "out_channels", "groups", "kernel", "stride", "padding"),
    [
        (3, 8, 1, (3, 3), (1, 1), (1, 1)),
        (6, 6, 6, (3, 3), (2, 2), (1, 1)),
        (4, 6, 2, (1, 1), (1, 1), (0, 0)),
    ],
    ids=["dense", "depthwise", "grouped-pointwise"],
)
@WIDTHS
def test_conv2d_equals_float_conv(
    codebook, rng, channels, out_channels, groups, kernel, stride, padding, bits
) -> None:
    cb = torch.from_numpy(codebook.codewords)
    per_channel = channels // groups * kernel[0] * kernel[1]
    blocks = -(-per_channel // codebook.D)
    indices = torch.from_numpy(
        rng.integers(0, codebook.K, size=(out_channels, blocks), dtype=np.int32)
    )
    bias = torch.from_numpy(rng.integers(-500, 500, size=out_channels, dtype=np.int32))
    x = torch.from_numpy(random_activations(rng, (2, channels, 7, 6), bits=bits))
    acc = vq_conv2d(
        cb, indices, bias, x, kernel_size=kernel, stride=stride, padding=padding, groups=groups
    )
    weights = decode(cb, indices)[:, :per_channel].reshape(
        out_channels, channels // groups, *kernel
    )
    expected = torch.nn.functional.conv2d(
        x.double(), weights.double(), bias.double(), stride=stride, padding=padding, groups=groups
    )
    assert acc.dtype == torch.int64
    assert torch.equal(acc.double(), expected)
