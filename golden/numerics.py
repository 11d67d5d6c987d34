"""The numerics contract of the accelerator, and its bit-exact reference in PyTorch.

Everything the hardware computes is defined here, once. The RTL, the cycle model and the
exporter are all checked against these functions.

Quantities
----------
``cb_int8[K, D]``
    The universal codebook: K codewords of D signed 8-bit entries. The float codebook is
    ``s_cb * cb_int8`` with one global scale ``s_cb``; the hardware only sees ``cb_int8``.
``idx[M, J]``
    A layer of M output channels and N inputs stores ``J = ceil(N / D)`` codeword indices per
    channel, each in ``[0, K)``. The integer weight row of channel ``o`` is the concatenation
    ``cb_int8[idx[o, 0]] ++ ... ++ cb_int8[idx[o, J-1]]``, of length ``J * D``.
``x_int8[N]``
    The input activations, signed 8-bit.

Padding
-------
When N is not a multiple of D the activations are zero-padded to ``J * D``. The padding is
exact for any index: a padded position multiplies a zero activation, so whatever codeword entry
sits there contributes nothing. No index is reserved for padding.

Accumulation
------------
``acc[o] = bias[o] + sum_{n < J*D} w_int8[o, n] * x_int8[n]``, exactly, in 32-bit two's
complement. Every product lies in ``[-16256, 16384]`` (``-128 * -128`` is the largest), so
``|acc[o]| <= |bias[o]| + J * D * 16384``. A layer is only valid when that bound is at most
``2**31 - 1`` (:func:`accumulator_bound`); then no input whatsoever can overflow the 32-bit
accumulator, and the hardware needs no wider one. With the 8 x 8-bit products this allows
``J * D`` up to 131,071 inputs with a zero bias.

Requantization
--------------
Per output channel, with a multiplier ``0 <= mult[o] < 2**16`` and a shift
``1 <= shift[o] <= 48``::

    y[o] = clamp((acc[o] * mult[o] + 2**(shift[o] - 1)) >> shift[o], lo, 127)

``>>`` is an arithmetic shift (floor division by ``2**shift``), so the added constant makes the
rounding "round half up" (towards +inf). ``lo = 0`` when the layer has a fused ReLU, else -128.
The product is below ``2**47`` in magnitude and the sum below ``2**48``, so 49 signed bits hold
it. ``mult[o] / 2**shift[o]`` approximates ``alpha[o] * s_cb * s_x / s_y``: the per-channel
scale ``alpha`` of VQ4ALL costs the hardware nothing.

Convolution
-----------
A 2-D convolution is the same GEMM over im2col columns (``torch.nn.functional.unfold``): the
weight row of channel ``o`` is laid out as ``(in_channel, kernel_row, kernel_col)``, the
order of ``Conv2d.weight[o].flatten()``. Grouped (and depthwise) convolution gives each group of
``M / groups`` channels its own ``C / groups`` input channels. The image is padded with its
zero point ``z`` (the int8 value that stands for a real zero, see below), so padding is exact.

Zero points
-----------
An int8 value ``x`` stands for the real ``s * (x - z)``: its scale ``s`` and zero point ``z``.
Most values are symmetric (``z = 0``). A value that is never negative (after a ReLU) may take
``z = -128``, so that its 256 codes all stand for reals ``>= 0``: twice the resolution of
``0..127``. The hardware never sees zero points: a layer whose input has zero point ``z_in``
folds ``-z_in * sum_n w_int8[o, n]`` into its bias (the image padding holds ``z_in``, so every
output pixel sums the same weights), and one whose output has zero point ``z_out`` folds
``round(z_out * 2**shift[o] / mult[o])`` into it (``z_out`` in accumulator units). The
requantization above is unchanged; for ``z_out = -128`` the lower clamp, -128, is real zero.
"""

from __future__ import annotations

import torch

__all__ = [
    "ACC_MAX",
    "ACC_MIN",
    "MULT_MAX",
    "PRODUCT_MAX",
    "SHIFT_MAX",
    "SHIFT_MIN",
    "accumulator_bound",
    "conv_columns",
    "conv_output_size",
    "average_pool",
    "decode",
    "global_average",
    "requantize",
    "rounded_mean",
    "vq_conv2d",
    "vq_gemm",
]

ACC_MIN = -(2**31)
ACC_MAX = 2**31 - 1
MULT_MAX = 2**16 - 1
SHIFT_MIN = 1
SHIFT_MAX = 48
#: The largest magnitude of one int8 x int8 product.
PRODUCT_MAX = 128 * 128


def accumulator_bound(bias: torch.Tensor, padded_inputs: int) -> torch.Tensor:
    """The largest ``|acc[o]|`` any input can produce, per channel, as int64."""
    return bias.to(torch.int64).abs() + padded_inputs * PRODUCT_MAX


def decode(codebook: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Integer weight matrix ``[M, J * D]`` (int64) of indices ``[M, J]`` into ``[K, D]``."""
    rows, blocks = indices.shape
    return codebook.to(torch.int64)[indices.to(torch.int64)].reshape(
        rows, blocks * codebook.shape[1]
    )


def _pad_inputs(x: torch.Tensor, length: int) -> torch.Tensor:
    return torch.nn.functional.pad(x.to(torch.int64), (0, length - x.shape[-1]))


def requantize(
    acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor, relu: bool
) -> torch.Tensor:
    """int8 outputs of int32 accumulators ``[..., M]`` with per-channel ``mult``/``shift``."""
    acc = acc.to(torch.int64)
    mult = mult.to(torch.int64)
    shift = shift.to(torch.int64)
    rounded = (acc * mult + (1 << (shift - 1))) >> shift
    return rounded.clamp(0 if relu else -128, 127).to(torch.int8)


def vq_gemm(
    codebook: torch.Tensor, indices: torch.Tensor, bias: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """int32 accumulators ``[B, M]`` of inputs ``x [B, N]`` (int8) through a VQ layer.

    Raises ``ValueError`` if ``N`` does not fit in the ``J * D`` inputs the indices cover, or if
    an accumulator leaves the int32 range (which a validated layer cannot do).
    """
    weights = decode(codebook, indices)
    if x.shape[-1] > weights.shape[1] or x.shape[-1] <= weights.shape[1] - codebook.shape[1]:
        raise ValueError(
            f"inputs of length {x.shape[-1]} do not match {indices.shape[1]} blocks of "
            f"{codebook.shape[1]}"
        )
    acc = _pad_inputs(x, weights.shape[1]) @ weights.T + bias.to(torch.int64)
    if acc.numel() and (acc.min() < ACC_MIN or acc.max() > ACC_MAX):
        raise ValueError("accumulator left the int32 range: the layer was not validated")
    return acc.to(torch.int32)


def conv_output_size(
    height: int,
    width: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int]:
    """The output height and width of a convolution (or pooling) window over ``height x width``."""
    return (
        (height + 2 * padding[0] - kernel_size[0]) // stride[0] + 1,
        (width + 2 * padding[1] - kernel_size[1]) // stride[1] + 1,
    )


def conv_columns(
    x: torch.Tensor,
    *,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    groups: int = 1,
    zero_point: int = 0,
) -> torch.Tensor:
    """The im2col columns of int8 images ``x [B, C, H, W]``: int64 ``[B, groups, H'*W', N]``.

    Column ``p`` of group ``g`` is the input of output pixel ``p`` (row-major) for every channel
    of group ``g``, laid out as ``(in_channel, kernel_row, kernel_col)`` with
    ``N = C / groups * kernel_h * kernel_w``: the GEMM input of that group's channels. The
    padding holds the images' ``zero_point``.
    """
    batch, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"groups={groups} does not divide {channels} input channels")
    # unfold has no integer kernel and pads with zeros; int8 values are exact in float64
    # (53-bit mantissa), and shifting by the zero point makes the padding the zero point.
    columns = (
        torch.nn.functional.unfold(
            x.to(torch.float64) - zero_point, kernel_size, padding=padding, stride=stride
        )
        + zero_point
    ).to(torch.int64)
    per_group = columns.shape[1] // groups
    return columns.reshape(batch, groups, per_group, -1).transpose(2, 3)


def vq_conv2d(
    codebook: torch.Tensor,
    indices: torch.Tensor,
    bias: torch.Tensor,
    x: torch.Tensor,
    *,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    groups: int = 1,
    zero_point: int = 0,
) -> torch.Tensor:
    """int32 accumulators ``[B, M, H', W']`` of a VQ convolution of ``x [B, C, H, W]`` (int8,
    with ``zero_point``): group ``g``'s channels are the GEMM of :func:`vq_gemm` over
    :func:`conv_columns` of group ``g``."""
    batch, _, height, width = x.shape
    out_channels = indices.shape[0]
    if out_channels % groups:
        raise ValueError(f"groups={groups} does not divide {out_channels} output channels")
    columns = conv_columns(
        x,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        groups=groups,
        zero_point=zero_point,
    )
    out_h, out_w = conv_output_size(height, width, kernel_size, stride, padding)
    positions = out_h * out_w
    rows = indices.reshape(groups, out_channels // groups, indices.shape[1])
    bias = bias.reshape(groups, out_channels // groups)
    acc = torch.cat(
        [
            vq_gemm(
                codebook, rows[g], bias[g], columns[:, g].reshape(batch * positions, -1)
            ).reshape(batch, positions, -1)
            for g in range(groups)
        ],
        dim=2,
    )
    return acc.transpose(1, 2).reshape(batch, out_channels, out_h, out_w)


def rounded_mean(total: torch.Tensor, count: int) -> torch.Tensor:
    """The mean of ``count`` int8 values whose sum is ``total``, rounded half up (towards +inf
    on a tie): ``floor((2 * total + count) / (2 * count))``, int8. A mean of int8 values is an
    int8 value, so nothing saturates."""
    total = total.to(torch.int64)
    return torch.div(2 * total + count, 2 * count, rounding_mode="floor").to(torch.int8)


def global_average(x: torch.Tensor) -> torch.Tensor:
    """The :func:`rounded_mean` of each channel of int8 ``x [B, C, H, W]`` over its
    ``H * W`` values: int8 ``[B, C]`` in the input's scale."""
    return rounded_mean(x.to(torch.int64).sum(dim=(2, 3)), x.shape[2] * x.shape[3])


def average_pool(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """The :func:`rounded_mean` of every ``kernel`` window (``stride`` apart, no padding) of
    int8 ``x [B, C, H, W]``, in the input's scale."""
    # Window sums of int8 values are exact in float64 (53-bit mantissa).
    sums = torch.nn.functional.avg_pool2d(x.to(torch.float64), kernel, stride, divisor_override=1)
    return rounded_mean(sums.to(torch.int64), kernel[0] * kernel[1])
