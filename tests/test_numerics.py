"""The golden numerics against independent float computations and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from golden.numerics import decode, requantize, vq_conv2d, vq_gemm


def test_requantize_rounds_half_up_and_saturates() -> None:
    # acc * mult / 2**shift: 5/2 -> 3, -5/2 -> -2 (half up), 7/4 -> 2, -7/4 -> -2.
    acc = torch.tensor([5, -5, 7, -7, 1000, -1000, -3], dtype=torch.int32)
    mult = torch.tensor([1, 1, 1, 1, 1, 1, 1], dtype=torch.int32)
    shift = torch.tensor([1, 1, 2, 2, 1, 1, 1], dtype=torch.int32)
    assert requantize(acc, mult, shift, relu=False).tolist() == [3, -2, 2, -2, 127, -128, -1]
    assert requantize(acc, mult, shift, relu=True).tolist() == [3, 0, 2, 0, 127, 0, 0]


def test_requantize_matches_float_rounding(rng: np.random.Generator) -> None:
    acc = torch.from_numpy(rng.integers(-(2**31), 2**31, size=4096).astype(np.int32))
    mult = torch.from_numpy(rng.integers(0, 2**16, size=4096).astype(np.int32))
    shift = torch.from_numpy(rng.integers(1, 49, size=4096).astype(np.int32))
    exact = [
        max(-128, min(127, int(np.floor(a * m / 2**s + 0.5))))
        for a, m, s in zip(acc.tolist(), mult.tolist(), shift.tolist(), strict=True)
    ]
    assert requantize(acc, mult, shift, relu=False).tolist() == exact


def test_gemm_equals_float_matmul_with_zero_padding(codebook, rng: np.random.Generator) -> None:
    cb = torch.from_numpy(codebook.codewords)
    indices = torch.from_numpy(rng.integers(0, codebook.K, size=(7, 5), dtype=np.int32))
    bias = torch.from_numpy(rng.integers(-1000, 1000, size=7, dtype=np.int32))
    x = torch.from_numpy(rng.integers(-128, 128, size=(3, 37), dtype=np.int8))
    weights = cb.double()[indices.long()].reshape(7, 40)[:, :37]
    expected = x.double() @ weights.T + bias.double()
    assert torch.equal(vq_gemm(cb, indices, bias, x).double(), expected)


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
def test_conv2d_equals_float_conv(
    codebook, rng, channels, out_channels, groups, kernel, stride, padding
) -> None:
    cb = torch.from_numpy(codebook.codewords)
    per_channel = channels // groups * kernel[0] * kernel[1]
    blocks = -(-per_channel // codebook.D)
    indices = torch.from_numpy(
        rng.integers(0, codebook.K, size=(out_channels, blocks), dtype=np.int32)
    )
    bias = torch.from_numpy(rng.integers(-500, 500, size=out_channels, dtype=np.int32))
    x = torch.from_numpy(rng.integers(-128, 128, size=(2, channels, 7, 6), dtype=np.int8))
    acc = vq_conv2d(
        cb, indices, bias, x, kernel_size=kernel, stride=stride, padding=padding, groups=groups
    )
    weights = decode(cb, indices)[:, :per_channel].reshape(
        out_channels, channels // groups, *kernel
    )
    expected = torch.nn.functional.conv2d(
        x.double(), weights.double(), bias.double(), stride=stride, padding=padding, groups=groups
    )
    assert acc.dtype == torch.int32
    assert torch.equal(acc.double(), expected)
