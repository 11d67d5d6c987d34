"""The network program: compressed layers plus the host-side integer ops between them, and its
bit-exact golden inference.

A program is a graph of typed ops. Value 0 is the input, quantized on the host as
``clamp(floor(x / input_scale + 0.5) + input_zero_point, lo, hi)``; op ``i`` produces value
``i + 1`` from the value(s) it names. Every value is an integer tensor of the program's
``activation_bits`` (8 or 16; ``[lo, hi]`` is its range, -128..127 for 8) with a float scale
and a zero point (see :mod:`vq4all.golden.numerics`). The ops:

:class:`LayerOp` (``layer``)
    Layer program ``layer`` (linear or conv2d, see :mod:`vq4all.golden.numerics`) on value
    ``input``; its ``input_scale`` and ``input_zero_point`` must be that value's, its output has
    ``output_scale`` and ``output_zero_point``. ``name``
    is the layer's module path in the network it was exported from. This is the op the
    accelerator runs; the others run on the host.
:class:`MaxPool2dOp` (``maxpool2d``)
    ``kernel``/``stride`` max pooling without padding: exact on integers, scale and zero point
    unchanged (as for every op but a layer and an add).
:class:`AvgPool2dOp` (``avgpool2d``)
    ``kernel``/``stride`` average pooling without padding, each window's mean rounded half
    up: ``floor((2 * sum + n) / (2 * n))`` over its ``n`` values; scale unchanged.
:class:`FlattenOp` (``flatten``)
    ``[C, H, W] -> [C*H*W]`` in row-major order, scale unchanged.
:class:`ReluOp` (``relu``)
    ``max(x, 0)`` of a value with zero point 0.
:class:`AddOp` (``add``)
    Residual add of values ``inputs = [a, b]`` (zero point 0) into ``scale`` (zero point 0):
    ``clamp((a * mult[0] + b * mult[1] + 2**(shift-1)) >> shift, relu ? 0 : lo, hi)``,
    with the same ranges as a layer's requantization.
:class:`GlobalAvgPoolOp` (``globalavgpool``)
    The mean of each channel of ``[C, H, W]``, rounded half up:
    ``floor((2 * sum + n) / (2 * n))`` over its ``n = H * W`` values; ``[C, 1, 1]`` with
    ``keepdim``, else ``[C]``; scale unchanged.

The ops of real networks (version 6). Dimensions are an image's (the batch excluded); a value
may have any rank. Those that give their output a new ``scale`` and ``zero_point`` end in
:func:`~vq4all.golden.numerics.rescale` (a layer's rounding, signed ``mult``):

:class:`PadOp` (``pad``)
    Constant padding, ``(before, after)`` per dimension, last dimension first, with the
    input's zero point: real zero, exactly (TensorFlow's "SAME", ``nn.ZeroPad2d``).
:class:`ReshapeOp` (``reshape``), :class:`PermuteOp` (``permute``), :class:`SliceOp` (``slice``)
    Row-major reshape (flatten, unflatten, unsqueeze, squeeze, ``x[:, None]``), permutation
    of dimensions (transpose), and ``start:stop:step`` of one dimension (``x[:, 0]`` is a
    slice and a reshape); exact, scale unchanged.
:class:`ConcatOp` (``concat``)
    Values joined along a dimension, each rescaled into the output's scale (a copy when they
    share one).
:class:`MulOp` (``mul``), :class:`MatMulOp` (``matmul``)
    ``(a - z_a) * (b - z_b)`` elementwise, broadcasting size-1 dimensions (squeeze-and-
    excitation), or as matrices over the last two dimensions (attention), exactly in int64,
    then rescaled.
:class:`LookupOp` (``lookup``)
    Any elementwise function of one value (sigmoid, hard-sigmoid, SiLU, hard-swish, GELU,
    tanh, a ReLU6 inside the range, ``x * c``...) as a table of one output code per input
    code, computed at export from the function itself.
:class:`AffineOp` (``affine``)
    A per-channel ``mult``, ``bias`` and ``shift`` on dimension 0: a BatchNorm that no layer
    before it absorbs (after a ReLU, after pooling).
:class:`ConstantOp` (``constant``)
    The same codes for every image: a class token, position embeddings.
:class:`MeanOp` (``mean``)
    The mean over some dimensions (over tokens, over time), rounded half up.
:class:`SoftmaxOp` (``softmax``) and :class:`LayerNormOp` (``layernorm``)
    Over the last dimension, in integers only: a table of exponentials of the code
    differences and one rounded division per output; a mean-free sum of squares, an exact
    integer square root and one rounded division, then a rescale per feature (their
    docstrings give every step).

Every op is a frozen dataclass that validates its own fields on construction and knows its
output shape, so a program whose shapes do not add up is refused when it is built or loaded,
naming the op (``graph[i]``), never run into a wrong answer.

The file is an artifact of :mod:`vq4all.golden.container` (``format = vq4all.network``): layer
``k``'s arrays are tensors ``layers.<k>.<name>``; metadata ``layers`` (a JSON list of each layer's
fields), ``graph`` (a JSON list of ops, each ``{"op": kind, field: value, ...}``),
``input_scale``, ``input_zero_point``, ``input_shape``, ``activation_bits``, ``codebook_sha256``
and ``dataset`` (the data set whose images the program takes, or empty).

A per-layer VQ program (version 5) also carries each layer's own codebook: tensor
``codebooks.<k>`` (int8 ``[K_k, D]``) and metadata ``codebook_scales`` (a JSON list, one scale per
layer; ``[]`` or absent for a program of the universal codebook). Its ``codebook_sha256`` is then
:func:`per_layer_sha256` of them, and each layer's names its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from vq4all.golden.codebook import Codebook
from vq4all.golden.container import (
    MEMORY,
    PROGRAMS_UNCHANGED_SINCE,
    ArtifactError,
    as_is,
    located,
    parse_field,
    read_verified,
    save_artifact,
)
from vq4all.golden.errors import InputError
from vq4all.golden.layer import (
    LayerProgram,
    check_activations,
    layer_fields,
    layer_from_fields,
    run_layer,
)
from vq4all.golden.numerics import (
    ACTIVATION_BITS,
    MULT_MAX,
    SHIFT_MAX,
    SHIFT_MIN,
    activation_bits_of,
    activation_dtype,
    activation_range,
    average_pool,
    conv_output_size,
    global_average,
    requantize,
    rescale,
    rounded_mean,
)

__all__ = [
    "NETWORK_FORMAT",
    "AddOp",
    "AffineOp",
    "AvgPool2dOp",
    "ConcatOp",
    "ConstantOp",
    "FlattenOp",
    "GlobalAvgPoolOp",
    "LayerNormOp",
    "LayerOp",
    "LookupOp",
    "MatMulOp",
    "MaxPool2dOp",
    "MeanOp",
    "MulOp",
    "NetworkProgram",
    "Op",
    "PadOp",
    "PermuteOp",
    "ReluOp",
    "ReshapeOp",
    "SliceOp",
    "SoftmaxOp",
    "load_network",
    "network_values",
    "op_from_json",
    "op_to_json",
    "per_layer_sha256",
    "predictions",
    "quantize_input",
    "run_network",
    "save_network",
]

#: Input values in one batch of :func:`predictions`, since the im2col of the layers after grows
#: with them: 16 of MobileNetV2's 224x224 images (at 256, its first layers' im2col takes GBs),
#: 256 of the zoo's 28x28 ones.
BATCH_INPUT_VALUES = 16 * 3 * 224 * 224

NETWORK_FORMAT = "vq4all.network"


def per_layer_sha256(codebooks: list[Codebook] | tuple[Codebook, ...]) -> str:
    """The identity of a per-layer VQ program's codebooks: SHA-256 over each one's hash, in
    layer order."""
    digest = hashlib.sha256(f"vq4all-per-layer-codebooks {len(codebooks)}\n".encode())
    for codebook in codebooks:
        digest.update(codebook.sha256.encode())
    return digest.hexdigest()


def _fail(name: str, problem: str) -> ArtifactError:
    return ArtifactError(f"{MEMORY}: field {name!r}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: How each field type of an op is checked, by its annotation.
_FIELD_TYPES = {
    "int": ("an integer", _is_int),
    "bool": ("true or false", lambda value: isinstance(value, bool)),
    "float": (
        "a number",
        lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    ),
    "str": ("a string", lambda value: isinstance(value, str)),
    "tuple[int, int]": (
        "a pair of integers",
        lambda value: isinstance(value, tuple) and len(value) == 2 and all(map(_is_int, value)),
    ),
    "tuple[int, ...]": (
        "a list of integers",
        lambda value: isinstance(value, tuple) and all(map(_is_int, value)),
    ),
}


@dataclass(frozen=True)
class _Op:
    """Checks every field against its annotation, then the op's own rules (``_validate``)."""

    op: ClassVar[str]

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            expected, check = _FIELD_TYPES[item.type]
            value = getattr(self, item.name)
            if not check(value):
                raise _fail(item.name, f"{value!r} is not {expected}")
        self._validate()

    def _validate(self) -> None:
        pass

    @property
    def sources(self) -> tuple[int, ...]:
        """The values this op reads."""
        return (self.input,)

    @property
    def expected_zero_points(self) -> tuple[int, ...] | None:
        """The zero points this op's integer definition assumes of its sources (None: any)."""
        return None

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        """The shape of this op's output (batch excluded) from the shapes of the values."""
        return shapes[self.input]


@dataclass(frozen=True)
class LayerOp(_Op):
    """Layer program ``layer`` on value ``input`` (see the module docstring)."""

    op: ClassVar[str] = "layer"
    input: int
    layer: int
    name: str


@dataclass(frozen=True)
class _WindowOp(_Op):
    """An op on every ``kernel`` window (``stride`` apart, no padding) of ``[C, H, W]``."""

    input: int
    kernel: tuple[int, int]
    stride: tuple[int, int]

    def _validate(self) -> None:
        for name in ("kernel", "stride"):
            if min(getattr(self, name)) < 1:
                raise _fail(name, f"{list(getattr(self, name))} must be positive")

    def output_shape(self, shapes):
        shape = shapes[self.input]
        if len(shape) != 3:
            raise InputError(f"{self.op} takes [C, H, W], not {list(shape)}")
        height, width = conv_output_size(*shape[1:], self.kernel, self.stride, (0, 0))
        if height < 1 or width < 1:
            raise InputError(f"a {list(self.kernel)} window does not fit {list(shape)}")
        return (shape[0], height, width)


@dataclass(frozen=True)
class MaxPool2dOp(_WindowOp):
    """``kernel``/``stride`` max pooling of ``[C, H, W]``, no padding."""

    op: ClassVar[str] = "maxpool2d"

    def apply(self, values: list[torch.Tensor]) -> torch.Tensor:
        # int16 values are exact in float64; max pooling only compares them.
        x = values[self.input]
        pooled = torch.nn.functional.max_pool2d(x.to(torch.float64), self.kernel, self.stride)
        return pooled.to(x.dtype)


@dataclass(frozen=True)
class AvgPool2dOp(_WindowOp):
    """``kernel``/``stride`` average pooling of ``[C, H, W]``, no padding, each window's mean
    rounded half up (:func:`vq4all.golden.numerics.average_pool`)."""

    op: ClassVar[str] = "avgpool2d"

    def apply(self, values: list[torch.Tensor]) -> torch.Tensor:
        return average_pool(values[self.input], self.kernel, self.stride)


@dataclass(frozen=True)
class FlattenOp(_Op):
    """``[C, H, W] -> [C*H*W]``, row-major."""

    op: ClassVar[str] = "flatten"
    input: int

    def output_shape(self, shapes):
        return (math.prod(shapes[self.input]),)

    def apply(self, values: list[torch.Tensor]) -> torch.Tensor:
        x = values[self.input]
        return x.reshape(x.shape[0], -1)


@dataclass(frozen=True)
class ReluOp(_Op):
    """``max(x, 0)``."""

    op: ClassVar[str] = "relu"
    input: int

    def apply(self, values: list[torch.Tensor]) -> torch.Tensor:
        return values[self.input].clamp_min(0)


@dataclass(frozen=True)
class AddOp(_Op):
    """The residual add of values ``inputs`` (see the module docstring)."""

    op: ClassVar[str] = "add"
    inputs: tuple[int, int]
    mult: tuple[int, int]
    shift: int
    relu: bool
    scale: float

    def _validate(self) -> None:
        if not all(0 <= m <= MULT_MAX for m in self.mult):
            raise _fail("mult", f"{list(self.mult)} is out of range [0, {MULT_MAX}]")
        if not SHIFT_MIN <= self.shift <= SHIFT_MAX:
            raise _fail("shift", f"{self.shift} is out of range [{SHIFT_MIN}, {SHIFT_MAX}]")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise _fail("scale", f"{self.scale!r} is not a positive finite number")

    @property
    def sources(self) -> tuple[int, ...]:
        return self.inputs

    def output_shape(self, shapes):
        first, second = (shapes[source] for source in self.inputs)
        if first != second:
            raise InputError(f"cannot add values of shapes {list(first)} and {list(second)}")
        return first

    def apply(self, values: list[torch.Tensor]) -> torch.Tensor:
        # The same rounding and saturation as a layer, on a * mult[0] + b * mult[1].
        a, b = (values[source] for source in self.inputs)
        total = a.to(torch.int64) * self.mult[0] + b.to(torch.int64) * self.mult[1]
        return requantize(
            total, torch.tensor(1), torch.tensor(self.shift), self.relu, activation_bits_of(a)
        )


@dataclass(frozen=True)
class GlobalAvgPoolOp(_Op):
    """The mean of each channel of ``[C, H, W]``, rounded half up
    (:func:`vq4all.golden.numerics.global_average`): ``[C, 1, 1]`` with ``keepdim``, else ``[C]``.
    The output has the input's scale."""

    op: ClassVar[str] = "globalavgpool"
    input: int
    keepdim: bool

    def output_shape(self, shapes):
        shape = shapes[self.input]
        if len(shape) != 3:
            raise InputError(f"global average pooling takes [C, H, W], not {list(shape)}")
        return (shape[0], 1, 1) if self.keepdim else (shape[0],)

    def apply(self, values: list[torch.Tensor]) -> torch.Tensor:
        y = global_average(values[self.input])
        return y[:, :, None, None] if self.keepdim else y


def _check_output(op: _Op) -> None:
    """The scale and zero point fields of an op that gives its output a new scale."""
    if not (math.isfinite(op.scale) and op.scale > 0):
        raise _fail("scale", f"{op.scale!r} is not a positive finite number")
    check_activations(16, {"zero_point": op.zero_point})


def _check_requantization(mult: tuple[int, ...], shift: tuple[int, ...]) -> None:
    if not all(abs(m) <= MULT_MAX for m in mult):
        raise _fail("mult", f"an entry is out of range [-{MULT_MAX}, {MULT_MAX}]")
    if not all(SHIFT_MIN <= value <= SHIFT_MAX for value in shift):
        raise _fail("shift", f"an entry is out of range [{SHIFT_MIN}, {SHIFT_MAX}]")


@dataclass(frozen=True)
class PadOp(_Op):
    """Constant padding by ``pads`` (``(before, after)`` pairs, the last dimension first, as
    ``torch.nn.functional.pad``) with code ``value``, which must be the input's zero point:
    the padding stands for real zero, exactly."""

    op: ClassVar[str] = "pad"
    input: int
    pads: tuple[int, ...]
    value: int

    def _validate(self) -> None:
        if not self.pads or len(self.pads) % 2 or min(self.pads) < 0:
            raise _fail("pads", f"{list(self.pads)} is not (before, after) pairs >= 0")

    @property
    def expected_zero_points(self):
        return (self.value,)

    def output_shape(self, shapes):
        shape = list(shapes[self.input])
        if len(self.pads) // 2 > len(shape):
            raise InputError(f"{len(self.pads) // 2} padded dimensions of {list(shape)}")
        for k in range(len(self.pads) // 2):
            shape[-1 - k] += self.pads[2 * k] + self.pads[2 * k + 1]
        return tuple(shape)

    def apply(self, values):
        return torch.nn.functional.pad(values[self.input], self.pads, value=self.value)


@dataclass(frozen=True)
class ReshapeOp(_Op):
    """The values in row-major order, as ``shape``: flattening, unflattening, unsqueezing and
    squeezing all are this. Scale unchanged."""

    op: ClassVar[str] = "reshape"
    input: int
    shape: tuple[int, ...]

    def _validate(self) -> None:
        if not self.shape or min(self.shape) < 1:
            raise _fail("shape", f"{list(self.shape)} is not a list of sizes > 0")

    def output_shape(self, shapes):
        if math.prod(shapes[self.input]) != math.prod(self.shape):
            raise InputError(f"{list(shapes[self.input])} cannot be {list(self.shape)}")
        return self.shape

    def apply(self, values):
        x = values[self.input]
        return x.reshape(x.shape[0], *self.shape)


@dataclass(frozen=True)
class PermuteOp(_Op):
    """Dimension ``dims[k]`` of the input as dimension ``k`` (a transpose is one). Scale
    unchanged."""

    op: ClassVar[str] = "permute"
    input: int
    dims: tuple[int, ...]

    def output_shape(self, shapes):
        shape = shapes[self.input]
        if sorted(self.dims) != list(range(len(shape))):
            raise InputError(f"dims {list(self.dims)} are no permutation of {list(shape)}")
        return tuple(shape[d] for d in self.dims)

    def apply(self, values):
        return values[self.input].permute(0, *(d + 1 for d in self.dims)).contiguous()


@dataclass(frozen=True)
class SliceOp(_Op):
    """Entries ``start, start + step, ...`` below ``stop`` of dimension ``dim``. Scale
    unchanged."""

    op: ClassVar[str] = "slice"
    input: int
    dim: int
    start: int
    stop: int
    step: int

    def _validate(self) -> None:
        if not 0 <= self.start < self.stop or self.step < 1:
            raise _fail("stop", f"[{self.start}:{self.stop}:{self.step}] selects nothing")

    def output_shape(self, shapes):
        shape = list(shapes[self.input])
        if not 0 <= self.dim < len(shape) or self.stop > shape[self.dim]:
            raise InputError(f"[{self.start}:{self.stop}] of dimension {self.dim} of {shape}")
        shape[self.dim] = -(-(self.stop - self.start) // self.step)
        return tuple(shape)

    def apply(self, values):
        x = values[self.input]
        index = [slice(None)] * x.dim()
        index[self.dim + 1] = slice(self.start, self.stop, self.step)
        return x[tuple(index)]


@dataclass(frozen=True)
class ConcatOp(_Op):
    """Values ``inputs`` (zero points ``input_zero_points``) joined along dimension ``dim``,
    each first brought to ``scale`` and ``zero_point`` by :func:`~vq4all.golden.numerics.rescale`
    with its ``mult`` and ``shift`` (``mult = 2**shift`` and equal zero points copy a value
    of the output's scale exactly)."""

    op: ClassVar[str] = "concat"
    inputs: tuple[int, ...]
    input_zero_points: tuple[int, ...]
    dim: int
    mult: tuple[int, ...]
    shift: tuple[int, ...]
    scale: float
    zero_point: int

    def _validate(self) -> None:
        if not len(self.inputs) == len(self.mult) == len(self.shift) == len(self.input_zero_points):
            raise _fail("mult", "needs one mult, shift and zero point per input")
        _check_requantization(self.mult, self.shift)
        _check_output(self)

    @property
    def sources(self):
        return self.inputs

    @property
    def expected_zero_points(self):
        return self.input_zero_points

    def output_shape(self, shapes):
        parts = [shapes[source] for source in self.inputs]
        rank = len(parts[0])
        if not 0 <= self.dim < rank or any(
            len(part) != rank
            or any(
                a != b
                for k, (a, b) in enumerate(zip(part, parts[0], strict=False))
                if k != self.dim
            )
            for part in parts
        ):
            raise InputError(f"cannot join {[list(p) for p in parts]} along {self.dim}")
        shape = list(parts[0])
        shape[self.dim] = sum(part[self.dim] for part in parts)
        return tuple(shape)

    def apply(self, values):
        bits = activation_bits_of(values[self.inputs[0]])
        parts = [
            rescale(values[source], zero, mult, shift, self.zero_point, bits)
            for source, zero, mult, shift in zip(
                self.inputs, self.input_zero_points, self.mult, self.shift, strict=True
            )
        ]
        return torch.cat(parts, dim=self.dim + 1)


def _broadcast(first: tuple[int, ...], second: tuple[int, ...]) -> tuple[int, ...]:
    if len(first) != len(second) or any(
        a != b and 1 not in (a, b) for a, b in zip(first, second, strict=False)
    ):
        raise InputError(f"values of shapes {list(first)} and {list(second)} do not broadcast")
    return tuple(max(a, b) for a, b in zip(first, second, strict=True))


@dataclass(frozen=True)
class MulOp(_Op):
    """The elementwise product of values ``inputs = [a, b]`` (zero points
    ``input_zero_points``; a size-1 dimension broadcasts, as in squeeze-and-excitation):
    :func:`~vq4all.golden.numerics.rescale` of ``(a - z_a) * (b - z_b)`` by ``mult`` and
    ``shift`` into ``scale`` and ``zero_point``."""

    op: ClassVar[str] = "mul"
    inputs: tuple[int, int]
    input_zero_points: tuple[int, int]
    mult: int
    shift: int
    scale: float
    zero_point: int

    def _validate(self) -> None:
        _check_requantization((self.mult,), (self.shift,))
        _check_output(self)

    @property
    def sources(self):
        return self.inputs

    @property
    def expected_zero_points(self):
        return self.input_zero_points

    def output_shape(self, shapes):
        return _broadcast(*(shapes[source] for source in self.inputs))

    def apply(self, values):
        (a, b), (z_a, z_b) = (values[i] for i in self.inputs), self.input_zero_points
        product = (a.to(torch.int64) - z_a) * (b.to(torch.int64) - z_b)
        return rescale(product, 0, self.mult, self.shift, self.zero_point, activation_bits_of(a))


@dataclass(frozen=True)
class LookupOp(_Op):
    """Any elementwise function of one value (sigmoid, SiLU, GELU, tanh, hard-swish, a
    constant factor...) as a table: code ``x`` becomes ``table[x - lo]``, one entry for each of
    the ``2**bits`` codes, in ``scale`` and ``zero_point``. ``function`` names what it
    tabulates. Exact by construction: the host and golden read the same table."""

    op: ClassVar[str] = "lookup"
    input: int
    function: str
    table: tuple[int, ...]
    scale: float
    zero_point: int

    def _validate(self) -> None:
        if len(self.table) not in (2**bits for bits in ACTIVATION_BITS):
            raise _fail("table", f"{len(self.table)} entries, not one per code (256 or 65536)")
        low, high = activation_range(16 if len(self.table) > 256 else 8)
        if not low <= min(self.table) <= max(self.table) <= high:
            raise _fail("table", f"an entry is out of the activation range [{low}, {high}]")
        _check_output(self)

    def apply(self, values):
        x = values[self.input]
        low = activation_range(activation_bits_of(x))[0]
        if len(self.table) != 2 ** activation_bits_of(x):
            raise InputError(f"a table of {len(self.table)} entries for {x.dtype} values")
        table = torch.tensor(self.table, dtype=x.dtype)
        return table[x.to(torch.int64) - low]


@dataclass(frozen=True)
class AffineOp(_Op):
    """A per-channel affine map (a BatchNorm that no layer before it can absorb) of dimension 0:
    channel ``c`` is :func:`~vq4all.golden.numerics.rescale` by ``mult[c]`` (signed),
    ``bias[c]`` and ``shift[c]`` from ``input_zero_point`` into ``scale`` and
    ``zero_point``."""

    op: ClassVar[str] = "affine"
    input: int
    input_zero_point: int
    mult: tuple[int, ...]
    bias: tuple[int, ...]
    shift: tuple[int, ...]
    scale: float
    zero_point: int

    def _validate(self) -> None:
        if not len(self.mult) == len(self.bias) == len(self.shift) > 0:
            raise _fail("bias", "needs one mult, bias and shift per channel")
        _check_requantization(self.mult, self.shift)
        if max(abs(b) for b in self.bias) >= 2**62:
            raise _fail("bias", "an entry does not fit 63 bits")
        _check_output(self)

    @property
    def expected_zero_points(self):
        return (self.input_zero_point,)

    def output_shape(self, shapes):
        shape = shapes[self.input]
        if shape[0] != len(self.mult):
            raise InputError(f"{len(self.mult)} channels' parameters for {list(shape)}")
        return shape

    def apply(self, values):
        x = values[self.input]
        per_channel = (1, len(self.mult)) + (1,) * (x.dim() - 2)
        mult, bias, shift = (
            torch.tensor(field).reshape(per_channel) for field in (self.mult, self.bias, self.shift)
        )
        return rescale(
            x, self.input_zero_point, mult, shift, self.zero_point, activation_bits_of(x), bias
        )


@dataclass(frozen=True)
class MeanOp(_Op):
    """The mean over dimensions ``dims`` (mean pooling over tokens or time), rounded half up
    (:func:`~vq4all.golden.numerics.rounded_mean`), those dimensions kept as size 1 with
    ``keepdim``; scale and zero point unchanged."""

    op: ClassVar[str] = "mean"
    input: int
    dims: tuple[int, ...]
    keepdim: bool

    def output_shape(self, shapes):
        shape = shapes[self.input]
        if (
            not self.dims
            or len(set(self.dims)) != len(self.dims)
            or not all(0 <= d < len(shape) for d in self.dims)
        ):
            raise InputError(f"dims {list(self.dims)} of {list(shape)}")
        if self.keepdim:
            return tuple(1 if d in self.dims else n for d, n in enumerate(shape))
        kept = tuple(n for d, n in enumerate(shape) if d not in self.dims)
        return kept or (1,)

    def apply(self, values):
        x = values[self.input]
        dims = tuple(d + 1 for d in self.dims)
        count = math.prod(x.shape[d] for d in dims)
        total = x.to(torch.int64).sum(dim=dims, keepdim=self.keepdim)
        mean = rounded_mean(total, count, x.dtype)
        return mean if mean.dim() > 1 else mean.reshape(len(x), 1)


@dataclass(frozen=True)
class ConstantOp(_Op):
    """A value the same for every image (a class token, a position embedding): ``codes`` in
    row-major order, of ``shape``, in ``scale`` and ``zero_point``."""

    op: ClassVar[str] = "constant"
    codes: tuple[int, ...]
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    def _validate(self) -> None:
        if not self.shape or min(self.shape) < 1 or math.prod(self.shape) != len(self.codes):
            raise _fail("codes", f"{len(self.codes)} codes do not fill {list(self.shape)}")
        _check_output(self)

    @property
    def sources(self):
        return ()

    def output_shape(self, shapes):
        return self.shape

    def apply(self, values):
        batch = values[0].shape[0]
        codes = torch.tensor(self.codes, dtype=values[0].dtype).reshape(1, *self.shape)
        return codes.expand(batch, *self.shape).contiguous()


@dataclass(frozen=True)
class MatMulOp(MulOp):
    """The matrix product of two values (attention's ``q @ k^T`` and ``p @ v``), over their
    last two dimensions, the others matched: ``acc = (a - z_a) @ (b - z_b)`` exactly (int64),
    then :func:`~vq4all.golden.numerics.rescale` by ``mult`` and ``shift`` into ``scale`` and
    ``zero_point``; the fields are :class:`MulOp`'s."""

    op: ClassVar[str] = "matmul"

    def output_shape(self, shapes):
        first, second = (shapes[source] for source in self.inputs)
        if len(first) < 2 or first[:-2] != second[:-2] or first[-1] != second[-2]:
            raise InputError(f"cannot multiply matrices {list(first)} and {list(second)}")
        if first[-1] * 2 ** (2 * 16) >= 2**62:
            raise InputError(f"a product over {first[-1]} terms may not fit 63 bits")
        return (*first[:-1], second[-1])

    def apply(self, values):
        (a, b), (z_a, z_b) = (values[i] for i in self.inputs), self.input_zero_points
        product = (a.to(torch.int64) - z_a) @ (b.to(torch.int64) - z_b)
        return rescale(product, 0, self.mult, self.shift, self.zero_point, activation_bits_of(a))


#: Fractional bits of :class:`SoftmaxOp`'s exponentials and of :class:`LayerNormOp`'s
#: normalized values.
FRACTION_BITS = 15
#: :class:`LayerNormOp` takes the root of ``Q * 4**NORM_BITS``: 8 more bits of it.
NORM_BITS = 8


@dataclass(frozen=True)
class SoftmaxOp(_Op):
    """Softmax over the last dimension. With ``m`` the row's largest code, each code ``x``
    gives ``e = exp_table[x - m + 2**bits - 1]`` (``round(2**15 * exp(s_in * (x - m)))``,
    tabulated at export), and the output code is ``lo + floor((2 * e * (hi - lo) + S) /
    (2 * S))`` over the row's sum ``S`` of ``e``: probabilities in ``scale = 1 / (hi - lo)``
    and ``zero_point = lo``, rounded half up, in integers alone."""

    op: ClassVar[str] = "softmax"
    input: int
    exp_table: tuple[int, ...]
    scale: float
    zero_point: int

    def _validate(self) -> None:
        if len(self.exp_table) not in (2**bits for bits in ACTIVATION_BITS):
            raise _fail("exp_table", f"{len(self.exp_table)} entries, not one per difference")
        if self.exp_table[-1] != 2**FRACTION_BITS or min(self.exp_table) < 0:
            raise _fail("exp_table", f"must fall from 2**{FRACTION_BITS} at 0 to >= 0")
        _check_output(self)

    def apply(self, values):
        x = values[self.input].to(torch.int64)
        bits = activation_bits_of(values[self.input])
        low, high = activation_range(bits)
        table = torch.tensor(self.exp_table, dtype=torch.int64)
        exps = table[x - x.amax(dim=-1, keepdim=True) + 2**bits - 1]
        total = exps.sum(dim=-1, keepdim=True)
        codes = low + torch.div(2 * exps * (high - low) + total, 2 * total, rounding_mode="floor")
        return codes.to(activation_dtype(bits))


def _integer_sqrt(q: torch.Tensor) -> torch.Tensor:
    """``floor(sqrt(q))`` of non-negative int64 ``q``, exactly (the float root corrected)."""
    root = torch.sqrt(q.to(torch.float64)).floor().to(torch.int64)
    for _ in range(2):
        root = torch.where(root * root > q, root - 1, root)
        root = torch.where((root + 1) * (root + 1) <= q, root + 1, root)
    return root


@dataclass(frozen=True)
class LayerNormOp(_Op):
    """LayerNorm over the last dimension (``n = len(mult)`` features), in integers: with
    ``c = x - input_zero_point``, ``D_i = n * c_i - sum(c)``, ``Q = sum(D_i**2) // n +
    eps_codes`` (``eps_codes = round(eps * n**2 / s_in**2)``) and ``R = isqrt(Q * 2**16)``,
    the normalized value ``t_i = floor((2 * D_i * 2**(15 + 8) + R) / (2 * R))``
    (``D_i / sqrt(Q)`` with 15 fractional bits) goes through feature ``j``'s
    :func:`~vq4all.golden.numerics.rescale` by ``mult[j]``, ``bias[j]`` and ``shift[j]``
    (its gain and offset) into ``scale`` and ``zero_point``."""

    op: ClassVar[str] = "layernorm"
    input: int
    input_zero_point: int
    eps_codes: int
    mult: tuple[int, ...]
    bias: tuple[int, ...]
    shift: tuple[int, ...]
    scale: float
    zero_point: int

    def _validate(self) -> None:
        if not len(self.mult) == len(self.bias) == len(self.shift) > 1:
            raise _fail("bias", "needs one mult, bias and shift per feature, and two features")
        _check_requantization(self.mult, self.shift)
        if self.eps_codes < 0 or max(abs(b) for b in self.bias) >= 2**62:
            raise _fail("eps_codes", "eps_codes must be >= 0 and each bias fit 63 bits")
        _check_output(self)

    @property
    def expected_zero_points(self):
        return (self.input_zero_point,)

    def output_shape(self, shapes):
        shape = shapes[self.input]
        if shape[-1] != len(self.mult):
            raise InputError(f"{len(self.mult)} features' parameters for {list(shape)}")
        return shape

    def fits(self, bits: int) -> bool:
        """Whether ``Q * 2**16`` fits 63 bits for ``bits``-wide activations: ``Q`` is at most
        ``n**2 * 2**(2 * bits)``."""
        return len(self.mult) ** 2 * 2 ** (2 * bits + 2 * NORM_BITS) < 2**63

    def apply(self, values):
        x = values[self.input]
        n = len(self.mult)
        centred = x.to(torch.int64) - self.input_zero_point
        deviation = n * centred - centred.sum(dim=-1, keepdim=True)
        q = (deviation * deviation).sum(dim=-1, keepdim=True) // n + self.eps_codes
        root = _integer_sqrt(q * 4**NORM_BITS).clamp_min(1)
        normalized = torch.div(
            2 * deviation * 2 ** (FRACTION_BITS + NORM_BITS) + root,
            2 * root,
            rounding_mode="floor",
        )
        mult, bias, shift = (torch.tensor(f) for f in (self.mult, self.bias, self.shift))
        return rescale(normalized, 0, mult, shift, self.zero_point, activation_bits_of(x), bias)


_OP_CLASSES = (
    LayerOp,
    MaxPool2dOp,
    AvgPool2dOp,
    FlattenOp,
    ReluOp,
    AddOp,
    GlobalAvgPoolOp,
    PadOp,
    ReshapeOp,
    PermuteOp,
    SliceOp,
    ConcatOp,
    MulOp,
    LookupOp,
    AffineOp,
    ConstantOp,
    MatMulOp,
    SoftmaxOp,
    LayerNormOp,
    MeanOp,
)
Op = (
    LayerOp
    | MaxPool2dOp
    | AvgPool2dOp
    | FlattenOp
    | ReluOp
    | AddOp
    | GlobalAvgPoolOp
    | PadOp
    | ReshapeOp
    | PermuteOp
    | SliceOp
    | ConcatOp
    | MulOp
    | LookupOp
    | AffineOp
    | ConstantOp
    | MatMulOp
    | SoftmaxOp
    | LayerNormOp
    | MeanOp
)
OPS: dict[str, type[_Op]] = {cls.op: cls for cls in _OP_CLASSES}


def op_to_json(op: Op) -> dict:
    """The op as a JSON object: ``{"op": kind, field: value, ...}``."""
    return {"op": op.op, **dataclasses.asdict(op)}


def op_from_json(fields: Any) -> Op:
    """The validated op of :func:`op_to_json`'s output; raise :class:`ArtifactError` naming the
    field that is missing, unknown or mistyped."""
    if not isinstance(fields, dict):
        raise _fail("op", f"an op is a JSON object, not {fields!r}")
    kind = fields.get("op")
    if kind not in OPS:
        raise _fail("op", f"{kind!r} is not one of {tuple(OPS)}")
    cls = OPS[kind]
    names = [item.name for item in dataclasses.fields(cls)]
    for name in fields:
        if name != "op" and name not in names:
            raise _fail(name, f"not a field of a {kind} op (fields: {', '.join(names)})")
    values = {}
    for name in names:
        if name not in fields:
            raise ArtifactError(
                f"{MEMORY}: field {name!r} is missing (a {kind} op has {', '.join(names)})"
            )
        value = fields[name]
        values[name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


@dataclass(frozen=True)
class NetworkProgram:
    """Layers, the op graph between them, and the input quantization (see the module doc).

    Construction validates every field, every op's references and the shapes and scales of
    every value, and raises :class:`ArtifactError` naming the field (``graph[i]`` for an op).
    ``codebooks`` are the layers' own codebooks, one per layer, in a per-layer VQ program; none
    in a program of the universal codebook.
    """

    codebook_sha256: str
    input_scale: float
    input_shape: tuple[int, ...]
    layers: list[LayerProgram]
    graph: list[Op]
    dataset: str = ""
    input_zero_point: int = 0
    activation_bits: int = 8
    codebooks: tuple[Codebook, ...] = ()

    def __post_init__(self) -> None:
        self._check_codebooks()
        if not (math.isfinite(self.input_scale) and self.input_scale > 0):
            raise _fail("input_scale", f"{self.input_scale!r} is not positive")
        check_activations(self.activation_bits, {"input_zero_point": self.input_zero_point})
        if not self.input_shape or not all(_is_int(size) and size > 0 for size in self.input_shape):
            raise _fail("input_shape", f"{list(self.input_shape)!r} is not a list of sizes > 0")
        if not isinstance(self.dataset, str):
            raise _fail("dataset", f"{self.dataset!r} is not a string")
        for k, layer in enumerate(self.layers):
            if self.codebooks:
                try:
                    layer.check_codebook(self.codebooks[k])
                except ArtifactError as error:
                    raise located(error, prefix=f"layers[{k}].") from None
            elif layer.codebook_sha256 != self.codebook_sha256:
                raise _fail(f"layers[{k}].codebook_sha256", "differs from the network's")
            if layer.activation_bits != self.activation_bits:
                raise _fail(
                    f"layers[{k}].activation_bits",
                    f"{layer.activation_bits} differs from the network's {self.activation_bits}",
                )
        for i, op in enumerate(self.graph):
            self._check_references(i, op)
            self._check_width(i, op)
        self.value_shapes()
        self._quantization()

    def _check_codebooks(self) -> None:
        if not self.codebooks:
            return
        if len(self.codebooks) != len(self.layers):
            raise _fail(
                "codebook_scales",
                f"{len(self.codebooks)} per-layer codebooks for {len(self.layers)} layers",
            )
        if self.codebook_sha256 != per_layer_sha256(self.codebooks):
            raise _fail(
                "codebook_sha256", "does not match the per-layer codebooks (corrupted or mixed)"
            )

    @property
    def per_layer(self) -> bool:
        """Whether each layer carries its own codebook (per-layer VQ)."""
        return bool(self.codebooks)

    def layer_codebook(self, k: int, universal: Codebook | None) -> Codebook:
        """The codebook that layer ``k`` indexes: its own, or the ``universal`` one.

        Raises :class:`InputError` when a program of the universal codebook gets none."""
        if self.codebooks:
            return self.codebooks[k]
        if universal is None:
            raise InputError(
                "the program indexes a universal codebook "
                f"({self.codebook_sha256[:16]}...); give the codebook"
            )
        return universal

    def _check_references(self, i: int, op: Any) -> None:
        if not isinstance(op, _OP_CLASSES):
            raise _fail(f"graph[{i}]", f"{op!r} is not an op")
        if not all(0 <= source <= i for source in op.sources):
            raise _fail(
                f"graph[{i}]", f"inputs {list(op.sources)} must name earlier values (0..{i})"
            )
        if isinstance(op, LayerOp) and not 0 <= op.layer < len(self.layers):
            raise _fail(f"graph[{i}].layer", f"{op.layer} is not in [0, {len(self.layers)})")

    def _check_width(self, i: int, op: Any) -> None:
        """An op's codes are of the program's activation width."""
        codes = {
            f"graph[{i}].{name}": getattr(op, name)
            for name in ("zero_point", "value", "input_zero_point")
            if hasattr(op, name)
        }
        codes |= {
            f"graph[{i}].input_zero_points[{k}]": zero_point
            for k, zero_point in enumerate(getattr(op, "input_zero_points", ()))
        }
        check_activations(self.activation_bits, codes)
        bits = self.activation_bits
        table = getattr(op, "table", None) or getattr(op, "exp_table", None)
        if table is not None and len(table) != 2**bits:
            raise _fail(f"graph[{i}]", f"a table of {len(table)} entries for {bits}-bit codes")
        low, high = activation_range(bits)
        if isinstance(op, ConstantOp) and not low <= min(op.codes) <= max(op.codes) <= high:
            raise _fail(f"graph[{i}].codes", f"a code is out of the range [{low}, {high}]")
        if isinstance(op, LayerNormOp) and not op.fits(bits):
            raise _fail(f"graph[{i}]", f"a LayerNorm over {len(op.mult)} features of {bits}-bit "
                        "codes may not fit 63 bits")  # fmt: skip

    def value_shapes(self) -> list[tuple[int, ...]]:
        """The shape of every value (batch excluded): the input's, then each op's output."""
        shapes = [tuple(self.input_shape)]
        for i, op in enumerate(self.graph):
            try:
                if isinstance(op, LayerOp):
                    shape = self.layers[op.layer].output_shape(shapes[op.input])
                else:
                    shape = op.output_shape(shapes)
            except ValueError as error:
                raise _fail(f"graph[{i}]", f"{op.op}: {error}") from None
            shapes.append(shape)
        return shapes

    def scales(self) -> list[float]:
        """The scale of every value: the input's, then each op's output."""
        return [scale for scale, _ in self._quantization()]

    def zero_points(self) -> list[int]:
        """The zero point of every value: the input's, then each op's output."""
        return [zero_point for _, zero_point in self._quantization()]

    def _quantization(self) -> list[tuple[float, int]]:
        """The scale and zero point of every value; raises :class:`ArtifactError` naming the op
        where a layer's input is not what it expects, or an add or a ReLU gets a value whose
        zero point is not 0."""
        values = [(self.input_scale, self.input_zero_point)]
        for i, op in enumerate(self.graph):
            if isinstance(op, LayerOp):
                layer = self.layers[op.layer]
                scale, zero_point = values[op.input]
                for what, expected, found in (
                    ("scale", layer.input_scale, scale),
                    ("zero point", layer.input_zero_point, zero_point),
                ):
                    if expected != found:
                        raise _fail(
                            f"graph[{i}]",
                            f"layer {op.layer} expects input {what} {expected!r}, value "
                            f"{op.input} has {found!r}",
                        )
                values.append((layer.output_scale, layer.output_zero_point))
                continue
            expected = op.expected_zero_points
            if isinstance(op, (AddOp, ReluOp)):
                expected = (0,) * len(op.sources)
            for source, zero_point in zip(op.sources, expected or (), strict=False):
                if values[source][1] != zero_point:
                    raise _fail(
                        f"graph[{i}]",
                        f"{op.op} takes value {source} at zero point {zero_point}, it has "
                        f"{values[source][1]}",
                    )
            if hasattr(op, "scale"):  # an op that requantizes
                values.append((op.scale, getattr(op, "zero_point", 0)))
            else:
                values.append(values[op.input])
        return values

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Value 0: the host's quantization of float inputs ``x`` (:func:`quantize_input` with
        the program's scale, zero point and activation width)."""
        return quantize_input(x, self.input_scale, self.input_zero_point, self.activation_bits)

    def layer_ops(self) -> list[LayerOp]:
        """The ops that the accelerator runs, in order."""
        return [op for op in self.graph if isinstance(op, LayerOp)]

    def check_codebook(self, codebook: Codebook) -> None:
        """Raise :class:`ArtifactError` unless the program was compressed against ``codebook``
        (every layer names the program's codebook, see ``__post_init__``)."""
        if self.codebooks:
            raise _fail(
                "codebook_scales",
                "the program carries its layers' own codebooks (per-layer VQ); it runs on no "
                f"universal codebook such as {codebook.sha256[:16]}...",
            )
        if self.codebook_sha256 != codebook.sha256:
            raise _fail(
                "codebook_sha256",
                f"the program was compressed against codebook {self.codebook_sha256}, not "
                f"{codebook.sha256}",
            )
        for k, layer in enumerate(self.layers):
            try:
                layer.check_codebook(codebook)
            except ArtifactError as error:
                raise located(error, prefix=f"layers[{k}].") from None


def quantize_input(
    x: torch.Tensor, scale: float, zero_point: int = 0, bits: int = 8
) -> torch.Tensor:
    """The host's input quantization: ``clamp(floor(x / scale + 0.5) + zero_point, lo, hi)``
    in the range of ``bits``-wide activations, as their dtype."""
    codes = torch.floor(x.to(torch.float64) / scale + 0.5) + zero_point
    return codes.clamp(*activation_range(bits)).to(activation_dtype(bits))


def network_values(
    codebook: Codebook | None, program: NetworkProgram, x: torch.Tensor
) -> list[torch.Tensor]:
    """Every integer value of the network on float inputs ``x [B, *input_shape]``: the quantized
    input, then each op's output, in graph order. ``codebook`` is the universal codebook (none
    for a per-layer VQ program).

    Raises ``ValueError`` for inputs of the wrong shape.
    """
    if tuple(x.shape[1:]) != tuple(program.input_shape):
        raise InputError(
            f"inputs of shape {tuple(x.shape[1:])} do not match input_shape {program.input_shape}"
        )
    values = [program.quantize(x)]
    for op in program.graph:
        if isinstance(op, LayerOp):
            layer = program.layers[op.layer]
            layer_codebook = program.layer_codebook(op.layer, codebook)
            values.append(
                torch.from_numpy(run_layer(layer_codebook, layer, values[op.input].numpy()))
            )
        else:
            values.append(op.apply(values))
    return values


def run_network(
    codebook: Codebook | None, program: NetworkProgram, x: torch.Tensor
) -> torch.Tensor:
    """Integer outputs of the network on float inputs ``x [B, *input_shape]``.

    Raises ``ValueError`` for inputs of the wrong shape.
    """
    return network_values(codebook, program, x)[-1]


def save_network(path: str | os.PathLike, program: NetworkProgram) -> None:
    """Write ``program`` to ``path`` atomically."""
    tensors, layers = {}, []
    for k, layer in enumerate(program.layers):
        arrays, metadata = layer_fields(layer)
        tensors |= {f"layers.{k}.{name}": array for name, array in arrays.items()}
        layers.append(metadata)
    for k, codebook in enumerate(program.codebooks):
        tensors[f"codebooks.{k}"] = codebook.codewords
    metadata = {
        "codebook_sha256": program.codebook_sha256,
        "input_scale": repr(program.input_scale),
        "input_zero_point": str(program.input_zero_point),
        "input_shape": json.dumps(list(program.input_shape)),
        "layers": json.dumps(layers),
        "graph": json.dumps([op_to_json(op) for op in program.graph]),
        "dataset": program.dataset,
        "activation_bits": str(program.activation_bits),
        "codebook_scales": json.dumps([codebook.scale for codebook in program.codebooks]),
    }
    save_artifact(path, NETWORK_FORMAT, tensors, metadata)


def _json_list(text: str) -> list:
    value = json.loads(text)
    if not isinstance(value, list):
        raise InputError("not a JSON list")
    return value


def _graph(path: str | os.PathLike, ops: list) -> list[Op]:
    graph = []
    for i, fields in enumerate(ops):
        try:
            graph.append(op_from_json(fields))
        except ArtifactError as error:
            raise located(error, path, f"graph[{i}].") from None
    return graph


def _codebooks(path, tensors: dict, metadata: dict) -> tuple[Codebook, ...]:
    """The per-layer codebooks of a program file (none for the universal codebook's)."""
    scales = (
        parse_field(path, metadata, "codebook_scales", _json_list)
        if ("codebook_scales" in metadata)
        else []
    )
    codebooks = []
    for k, scale in enumerate(scales):
        if not isinstance(scale, (int, float)) or isinstance(scale, bool):
            raise ArtifactError(f"{path}: field 'codebook_scales[{k}]': {scale!r} is not a number")
        codewords = parse_field(path, tensors, f"codebooks.{k}", as_is)
        try:
            codebooks.append(Codebook(codewords, float(scale)))
        except ArtifactError as error:
            raise located(error, path, f"codebooks[{k}].") from None
    extra = sorted(name for name in tensors if name.startswith("codebooks."))[len(scales) :]
    if extra:
        raise ArtifactError(f"{path}: field {extra[0]!r}: no codebook_scales entry names it")
    return tuple(codebooks)


def load_network(path: str | os.PathLike, codebook: Codebook | None = None) -> NetworkProgram:
    """Read and validate a network program (and check it against ``codebook``).

    Raises :class:`ArtifactError` naming the file and the field: corrupted or truncated
    files, bad layers (``layers[k].<field>``), bad ops or shapes (``graph[i]``), and a
    codebook hash that does not match; ``FileNotFoundError`` for a missing file.
    """
    tensors, metadata = read_verified(path, NETWORK_FORMAT, PROGRAMS_UNCHANGED_SINCE)
    layers = []
    for k, fields in enumerate(parse_field(path, metadata, "layers", _json_list)):
        prefix = f"layers.{k}."
        arrays = {name[len(prefix) :]: a for name, a in tensors.items() if name.startswith(prefix)}
        if not isinstance(fields, dict):
            raise ArtifactError(f"{path}: field 'layers[{k}]': not a JSON object")
        layers.append(layer_from_fields(path, arrays, fields, prefix=f"layers[{k}]."))
    graph = _graph(path, parse_field(path, metadata, "graph", _json_list))
    codebooks = _codebooks(path, tensors, metadata)
    try:
        program = NetworkProgram(
            codebook_sha256=parse_field(path, metadata, "codebook_sha256"),
            input_scale=parse_field(path, metadata, "input_scale", float),
            input_shape=tuple(parse_field(path, metadata, "input_shape", _json_list)),
            layers=layers,
            graph=graph,
            dataset=parse_field(path, metadata, "dataset"),
            input_zero_point=parse_field(path, metadata, "input_zero_point", int),
            activation_bits=parse_field(path, metadata, "activation_bits", int),
            codebooks=codebooks,
        )
        if codebook is not None:
            program.check_codebook(codebook)
    except ArtifactError as error:
        raise located(error, path) from None
    return program


def predictions(
    codebook: Codebook | None,
    program: NetworkProgram,
    x: torch.Tensor,
    batch: int | None = None,
) -> np.ndarray:
    """Class predictions: the argmax of the integer output (the first of equal maxima), computed
    ``batch`` images at a time (im2col of a whole data set would not fit in memory): by
    default as many as :data:`BATCH_INPUT_VALUES` input values, at most 256."""
    if batch is None:
        batch = min(256, max(1, BATCH_INPUT_VALUES // x[0].numel()))
    outputs = [run_network(codebook, program, x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat(outputs).to(torch.int64).argmax(dim=1).numpy()
