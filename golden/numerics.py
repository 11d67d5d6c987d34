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
``x[N]``
    The input activations: signed integers of ``b`` bits, ``b`` in :data:`ACTIVATION_BITS`
    (8 by default, 16 for a network whose output hangs on finer differences than 256 codes
    resolve). Every activation of a program, its input and every op's output, has the same
    width ``b``; the outputs are clamped to its range ``[-2**(b-1), 2**(b-1) - 1]``
    (:func:`activation_range`).

Padding
-------
When N is not a multiple of D the activations are zero-padded to ``J * D``. The padding is
exact for any index: a padded position multiplies a zero activation, so whatever codeword entry
sits there contributes nothing. No index is reserved for padding.

Accumulation
------------
``acc[o] = bias[o] + sum_{n < J*D} w_int8[o, n] * x[n]``, exactly, in ``b + 24``-bit two's
complement (:func:`accumulator_range`: 32 bits for int8 activations, 40 for int16). Every
product's magnitude is at most ``128 * 2**(b-1)`` (:func:`product_max`: ``-128 * -128 =
16384`` for int8), so ``|acc[o]| <= |bias[o]| + J * D * product_max(b)``. A layer is only valid
when that bound fits the accumulator (:func:`accumulator_bound`); then no input whatsoever can
overflow it, and the hardware needs no wider one. Either width allows ``J * D`` up to 131,071
inputs with a zero bias.

Requantization
--------------
Per output channel, with a multiplier ``0 <= mult[o] < 2**16`` and a shift
``1 <= shift[o] <= 48``::

    y[o] = clamp((acc[o] * mult[o] + 2**(shift[o] - 1)) >> shift[o], lo, hi)

``>>`` is an arithmetic shift (floor division by ``2**shift``), so the added constant makes the
rounding "round half up" (towards +inf). ``[lo, hi]`` is the activation range (-128..127 for
int8), with ``lo = 0`` when the layer has a fused ReLU. The product is below ``2**(b + 39)`` in
magnitude and the sum below ``2**(b + 40)`` (``2**48`` for int8), so ``b + 41`` signed bits
hold it. ``mult[o] / 2**shift[o]`` approximates ``alpha[o] * s_cb * s_x / s_y``: the per-channel
scale ``alpha`` of VQ4ALL costs the hardware nothing.

Convolution
-----------
A 2-D convolution is the same GEMM over im2col columns (``torch.nn.functional.unfold``): the
weight row of channel ``o`` is laid out as ``(in_channel, kernel_row, kernel_col)``, the
order of ``Conv2d.weight[o].flatten()``. Grouped (and depthwise) convolution gives each group of
``M / groups`` channels its own ``C / groups`` input channels. The image is padded with its
zero point ``z`` (the value that stands for a real zero, see below), so padding is exact.

Zero points
-----------
An integer value ``x`` stands for the real ``s * (x - z)``: its scale ``s`` and zero point
``z``. Most values are symmetric (``z = 0``). A value that is never negative (after a ReLU) may
take ``z = -2**(b-1)`` (-128 for int8), so that all its codes stand for reals ``>= 0``: twice
the resolution of the non-negative half. The hardware never sees zero points: a layer whose
input has zero point ``z_in`` folds ``-z_in * sum_n w_int8[o, n]`` into its bias (the image
padding holds ``z_in``, so every output pixel sums the same weights), and one whose output has
zero point ``z_out`` folds ``round(z_out * 2**shift[o] / mult[o])`` into it (``z_out`` in
accumulator units). The requantization above is unchanged; for ``z_out = -2**(b-1)`` the lower
clamp is real zero.
"""

from __future__ import annotations

import torch

from vq4all.golden.errors import InputError

__all__ = [
    "ACTIVATION_BITS",
    "MULT_MAX",
    "SHIFT_MAX",
    "SHIFT_MIN",
    "accumulator_bound",
    "accumulator_range",
    "activation_bits_of",
    "activation_dtype",
    "activation_range",
    "conv_columns",
    "conv_output_size",
    "average_pool",
    "decode",
    "global_average",
    "product_max",
    "requantize",
    "rescale",
    "rounded_mean",
    "vq_conv2d",
    "vq_gemm",
]

#: The activation widths of the contract, in bits.
ACTIVATION_BITS = (8, 16)
#: The accumulator's bits beyond the activations': the products' 8 (int8 codewords) and 16 for
#: the sum of up to 2**17 of them.
ACCUMULATOR_EXTRA_BITS = 24
MULT_MAX = 2**16 - 1
SHIFT_MIN = 1
SHIFT_MAX = 48


def _check_bits(bits: int) -> None:
    if bits not in ACTIVATION_BITS:
        raise InputError(f"activations are {ACTIVATION_BITS} bits wide, not {bits!r}")


def activation_range(bits: int = 8) -> tuple[int, int]:
    """The lowest and highest value of a ``bits``-wide activation."""
    _check_bits(bits)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def activation_dtype(bits: int = 8) -> torch.dtype:
    """The torch dtype that holds ``bits``-wide activations exactly."""
    _check_bits(bits)
    return torch.int8 if bits == 8 else torch.int16


def accumulator_range(bits: int = 8) -> tuple[int, int]:
    """The lowest and highest accumulator of a layer with ``bits``-wide activations."""
    _check_bits(bits)
    top = 2 ** (bits + ACCUMULATOR_EXTRA_BITS - 1)
    return -top, top - 1


def product_max(bits: int = 8) -> int:
    """The largest magnitude of an int8 codeword entry times a ``bits``-wide activation."""
    return 128 * -activation_range(bits)[0]


def accumulator_bound(bias: torch.Tensor, padded_inputs: int, bits: int = 8) -> torch.Tensor:
    """The largest ``|acc[o]|`` any input can produce, per channel, as int64."""
    return bias.to(torch.int64).abs() + padded_inputs * product_max(bits)


def decode(codebook: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Integer weight matrix ``[M, J * D]`` (int64) of indices ``[M, J]`` into ``[K, D]``."""
    rows, blocks = indices.shape
    return codebook.to(torch.int64)[indices.to(torch.int64)].reshape(
        rows, blocks * codebook.shape[1]
    )


def activation_bits_of(x: torch.Tensor) -> int:
    """The width of activations ``x`` from their dtype."""
    for bits in ACTIVATION_BITS:
        if x.dtype == activation_dtype(bits):
            return bits
    raise InputError(f"activations must be int8 or int16, not {x.dtype}")


def _pad_inputs(x: torch.Tensor, length: int) -> torch.Tensor:
    return torch.nn.functional.pad(x.to(torch.int64), (0, length - x.shape[-1]))


def requantize(
    acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor, relu: bool, bits: int = 8
) -> torch.Tensor:
    """``bits``-wide outputs of accumulators ``[..., M]`` with per-channel ``mult``/``shift``."""
    low, high = activation_range(bits)
    acc = acc.to(torch.int64)
    mult = mult.to(torch.int64)
    shift = shift.to(torch.int64)
    rounded = (acc * mult + (1 << (shift - 1))) >> shift
    return rounded.clamp(0 if relu else low, high).to(activation_dtype(bits))


def rescale(
    x: torch.Tensor,
    zero_in: int,
    mult: torch.Tensor,
    shift: torch.Tensor,
    zero_out: int,
    bits: int,
    bias: torch.Tensor | int = 0,
) -> torch.Tensor:
    """Integers ``x`` (zero point ``zero_in``) in another scale (zero point ``zero_out``):
    ``clamp((((x - zero_in) * mult + bias + 2**(shift - 1)) >> shift) + zero_out, lo, hi)`` in
    the range of ``bits``-wide activations, as their dtype. ``mult`` (signed,
    ``|mult| < 2**16``), ``shift`` (``1..48``) and ``bias`` broadcast against ``x``; the host
    ops that change a value's scale (:mod:`vq4all.golden.network`) all end in this, the same
    rounding as a layer's."""
    low, high = activation_range(bits)
    mult = torch.as_tensor(mult, dtype=torch.int64)
    shift = torch.as_tensor(shift, dtype=torch.int64)
    bias = torch.as_tensor(bias, dtype=torch.int64)
    centred = x.to(torch.int64) - zero_in
    rounded = (centred * mult + bias + (1 << (shift - 1))) >> shift
    return (rounded + zero_out).clamp(low, high).to(activation_dtype(bits))


def vq_gemm(
    codebook: torch.Tensor,
    indices: torch.Tensor,
    bias: torch.Tensor,
    x: torch.Tensor,
    bits: int | None = None,
) -> torch.Tensor:
    """Accumulators ``[B, M]`` (int64) of inputs ``x [B, N]`` (int8 or int16, the activation
    width, or ``bits`` wide when given, as the int64 columns of a convolution are) through a VQ
    layer.

    Raises ``ValueError`` if ``N`` does not fit in the ``J * D`` inputs the indices cover, or if
    an accumulator leaves the width's range (which a validated layer cannot do).
    """
    weights = decode(codebook, indices)
    if x.shape[-1] > weights.shape[1] or x.shape[-1] <= weights.shape[1] - codebook.shape[1]:
        raise InputError(
            f"inputs of length {x.shape[-1]} do not match {indices.shape[1]} blocks of "
            f"{codebook.shape[1]}"
        )
    acc = _pad_inputs(x, weights.shape[1]) @ weights.T + bias.to(torch.int64)
    low, high = accumulator_range(activation_bits_of(x) if bits is None else bits)
    if acc.numel() and (acc.min() < low or acc.max() > high):
        raise ValueError("accumulator left its range: the layer was not validated")
    return acc


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
    """The im2col columns of integer images ``x [B, C, H, W]``: int64
    ``[B, groups, H'*W', N]``.

    Column ``p`` of group ``g`` is the input of output pixel ``p`` (row-major) for every channel
    of group ``g``, laid out as ``(in_channel, kernel_row, kernel_col)`` with
    ``N = C / groups * kernel_h * kernel_w``: the GEMM input of that group's channels. The
    padding holds the images' ``zero_point``.
    """
    batch, channels, height, width = x.shape
    if channels % groups:
        raise InputError(f"groups={groups} does not divide {channels} input channels")
    # unfold has no integer kernel and pads with zeros; int16 values are exact in float64
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
    """Accumulators ``[B, M, H', W']`` (int64) of a VQ convolution of ``x [B, C, H, W]`` (int8
    or int16, with ``zero_point``): group ``g``'s channels are the GEMM of :func:`vq_gemm` over
    :func:`conv_columns` of group ``g``."""
    batch, _, height, width = x.shape
    out_channels = indices.shape[0]
    if out_channels % groups:
        raise InputError(f"groups={groups} does not divide {out_channels} output channels")
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
                codebook,
                rows[g],
                bias[g],
                columns[:, g].reshape(batch * positions, -1),
                activation_bits_of(x),
            ).reshape(batch, positions, -1)
            for g in range(groups)
        ],
        dim=2,
    )
    return acc.transpose(1, 2).reshape(batch, out_channels, out_h, out_w)


def rounded_mean(total: torch.Tensor, count: int, dtype: torch.dtype) -> torch.Tensor:
    """The mean of ``count`` activations of ``dtype`` whose sum is ``total``, rounded half up
    (towards +inf on a tie): ``floor((2 * total + count) / (2 * count))``, as ``dtype``. A mean
    of values in a range lies in it, so nothing saturates."""
    total = total.to(torch.int64)
    return torch.div(2 * total + count, 2 * count, rounding_mode="floor").to(dtype)


def global_average(x: torch.Tensor) -> torch.Tensor:
    """The :func:`rounded_mean` of each channel of ``x [B, C, H, W]`` over its ``H * W``
    values: ``[B, C]`` in the input's scale and dtype."""
    return rounded_mean(x.to(torch.int64).sum(dim=(2, 3)), x.shape[2] * x.shape[3], x.dtype)


def average_pool(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """The :func:`rounded_mean` of every ``kernel`` window (``stride`` apart, no padding) of
    ``x [B, C, H, W]``, in the input's scale and dtype."""
    # Window sums of int16 values are exact in float64 (53-bit mantissa).
    sums = torch.nn.functional.avg_pool2d(x.to(torch.float64), kernel, stride, divisor_override=1)
    return rounded_mean(sums.to(torch.int64), kernel[0] * kernel[1], x.dtype)
