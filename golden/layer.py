"""The layer program artifact (``format = vq4all.layer``) and golden integer inference of one
layer: what the accelerator must output.

Tensors ``indices`` int32 ``[M, J]``, ``bias`` int64 ``[M]`` (accumulator units),
``mult``/``shift`` int32 ``[M]``; metadata ``codebook_sha256``, ``codebook_size`` (K),
``codeword_length`` (D), ``kind`` (``linear`` or ``conv2d``), ``in_features`` (N), ``relu``,
``conv`` (JSON geometry or empty), ``input_scale``/``output_scale`` (floats, or empty),
``input_zero_point``/``output_zero_point`` and ``activation_bits`` (the width of its input and
output, 8 or 16, see :mod:`vq4all.golden.numerics`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vq4all.golden.codebook import Codebook
from vq4all.golden.container import (
    PROGRAMS_UNCHANGED_SINCE,
    ArtifactError,
    as_is,
    check_array,
    field_error,
    located,
    parse_field,
    read_verified,
    save_artifact,
)
from vq4all.golden.errors import InputError
from vq4all.golden.numerics import (
    ACTIVATION_BITS,
    MULT_MAX,
    SHIFT_MAX,
    SHIFT_MIN,
    accumulator_bound,
    accumulator_range,
    activation_range,
    conv_output_size,
    requantize,
    vq_conv2d,
    vq_gemm,
)

__all__ = [
    "LAYER_FORMAT",
    "LAYER_KINDS",
    "ConvGeometry",
    "LayerProgram",
    "check_activations",
    "layer_accumulators",
    "layer_fields",
    "layer_from_fields",
    "load_layer",
    "run_layer",
    "save_layer",
]

LAYER_FORMAT = "vq4all.layer"
LAYER_KINDS = ("linear", "conv2d")
LAYER_ARRAYS = ("indices", "bias", "mult", "shift")


@dataclass(frozen=True)
class ConvGeometry:
    """How a conv2d layer's GEMM rows map onto an image (see :mod:`vq4all.golden.numerics`)."""

    in_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1

    @property
    def inputs_per_channel(self) -> int:
        return self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]


@dataclass(frozen=True)
class LayerProgram:
    """One compressed layer: everything the accelerator needs to run it.

    ``indices`` int32 ``[M, J]`` into the codebook whose hash is ``codebook_sha256``; ``bias``
    int64 and ``mult``, ``shift`` int32 ``[M]``; ``in_features`` is N, with ``J = ceil(N / D)``.
    Its input and output are ``activation_bits`` wide. The zero points are the values that
    stand for a real zero in the input and the output; the input's pads a convolution's image
    (the bias already accounts for both).
    Construction validates every field and raises :class:`ArtifactError`.
    """

    codebook_sha256: str
    codebook_size: int
    codeword_length: int
    in_features: int
    indices: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    relu: bool
    kind: str = "linear"
    conv: ConvGeometry | None = None
    input_scale: float | None = None
    output_scale: float | None = None
    input_zero_point: int = 0
    output_zero_point: int = 0
    activation_bits: int = 8

    def __post_init__(self) -> None:
        self._validate_header()
        self._validate_arrays()

    @property
    def out_features(self) -> int:
        return self.indices.shape[0]

    @property
    def blocks(self) -> int:
        """J: codeword indices per output channel."""
        return self.indices.shape[1]

    def _validate_header(self) -> None:
        sha = self.codebook_sha256
        if not (
            isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
        ):
            raise field_error("codebook_sha256", f"{sha!r} is not a SHA-256 hex digest")
        size = self.codebook_size
        if size < 2:
            raise field_error("codebook_size", f"K={size} must be at least 2")
        if self.codeword_length < 1:
            raise field_error("codeword_length", f"D={self.codeword_length} must be at least 1")
        if self.in_features < 1:
            raise field_error("in_features", f"N={self.in_features} must be at least 1")
        if self.kind not in LAYER_KINDS:
            raise field_error("kind", f"{self.kind!r} is not one of {LAYER_KINDS}")
        if (self.kind == "conv2d") != (self.conv is not None):
            raise field_error(
                "conv", f"a {self.kind} layer {'needs' if self.conv is None else 'has no'} geometry"
            )
        for name in ("input_scale", "output_scale"):
            scale = getattr(self, name)
            if scale is not None and not (math.isfinite(scale) and scale > 0):
                raise field_error(name, f"{scale!r} is not a positive finite number")
        check_activations(
            self.activation_bits,
            {name: getattr(self, name) for name in ("input_zero_point", "output_zero_point")},
        )

    def _validate_arrays(self) -> None:
        check_array("indices", self.indices, np.int32, 2)
        rows, blocks = self.indices.shape
        expected_blocks = -(-self.in_features // self.codeword_length)
        if rows < 1 or blocks != expected_blocks:
            raise field_error(
                "indices",
                f"shape {self.indices.shape} does not add up: N={self.in_features} inputs in "
                f"blocks of D={self.codeword_length} need {expected_blocks} indices per row",
            )
        if self.indices.size and (
            self.indices.min() < 0 or self.indices.max() >= self.codebook_size
        ):
            bad = int(
                self.indices.max()
                if self.indices.max() >= self.codebook_size
                else self.indices.min()
            )
            raise field_error("indices", f"index {bad} is out of range [0, {self.codebook_size})")
        for name, dtype in (("bias", np.int64), ("mult", np.int32), ("shift", np.int32)):
            check_array(name, getattr(self, name), dtype, 1)
            if getattr(self, name).shape != (rows,):
                raise field_error(
                    name, f"shape {getattr(self, name).shape} does not match M={rows}"
                )
        _check_range("mult", self.mult, 0, MULT_MAX)
        _check_range("shift", self.shift, SHIFT_MIN, SHIFT_MAX)
        bits = self.activation_bits
        inputs = blocks * self.codeword_length
        bound = accumulator_bound(torch.from_numpy(self.bias), inputs, bits)
        if bound.max() > accumulator_range(bits)[1]:
            channel = int(bound.argmax())
            raise field_error(
                "bias",
                f"channel {channel}: |bias| + {inputs} * 128 * {2 ** (bits - 1)} = "
                f"{int(bound[channel])} can overflow the {bits + 24}-bit accumulator",
            )
        if self.conv is not None:
            self._validate_conv(rows)

    def _validate_conv(self, rows: int) -> None:
        geometry = self.conv
        if geometry.groups < 1 or geometry.in_channels % geometry.groups or rows % geometry.groups:
            raise field_error(
                "conv",
                f"groups={geometry.groups} does not divide {geometry.in_channels} input and "
                f"{rows} output channels",
            )
        if geometry.inputs_per_channel != self.in_features:
            raise field_error(
                "conv",
                f"{geometry.in_channels}/{geometry.groups} channels x kernel "
                f"{geometry.kernel_size} "
                f"= {geometry.inputs_per_channel} inputs, but in_features is {self.in_features}",
            )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of this layer's output on one input of ``input_shape`` (``(N,)`` for a
        linear layer, ``(C, H, W)`` for a convolution).

        Raises ``ValueError`` for an input shape the layer does not take."""
        shape = tuple(input_shape)
        if self.kind == "linear":
            if shape != (self.in_features,):
                raise InputError(f"a linear layer of {self.in_features} inputs takes {list(shape)}")
            return (self.out_features,)
        geometry = self.conv
        if len(shape) != 3 or shape[0] != geometry.in_channels:
            raise InputError(
                f"a conv2d layer of {geometry.in_channels} channels takes {list(shape)}"
            )
        height, width = conv_output_size(
            *shape[1:], geometry.kernel_size, geometry.stride, geometry.padding
        )
        if height < 1 or width < 1:
            raise InputError(f"a {list(geometry.kernel_size)} kernel does not fit {list(shape)}")
        return (self.out_features, height, width)

    def check_codebook(self, codebook: Codebook) -> None:
        """Raise :class:`ArtifactError` unless this layer was compressed against ``codebook``."""
        if self.codebook_sha256 != codebook.sha256:
            raise field_error(
                "codebook_sha256",
                f"{self.codebook_sha256[:16]}... does not match the codebook "
                f"{codebook.sha256[:16]}...",
            )
        if (self.codebook_size, self.codeword_length) != (codebook.K, codebook.D):
            raise field_error("codebook_size", "K/D do not match the codebook")


def check_activations(bits: Any, zero_points: dict[str, Any]) -> None:
    """Raise :class:`ArtifactError` unless ``bits`` (field ``activation_bits``) is an activation
    width and each of ``zero_points`` (by field name) a value of that width."""
    if bits not in ACTIVATION_BITS or type(bits) is not int:
        raise field_error("activation_bits", f"{bits!r} is not one of {ACTIVATION_BITS}")
    low, high = activation_range(bits)
    for name, zero_point in zero_points.items():
        if type(zero_point) is not int or not low <= zero_point <= high:
            raise field_error(name, f"{zero_point!r} is not a {bits}-bit activation value")


def _check_range(name: str, array: np.ndarray, low: int, high: int) -> None:
    if array.size and (array.min() < low or array.max() > high):
        bad = int(array.min() if array.min() < low else array.max())
        raise field_error(name, f"value {bad} is out of range [{low}, {high}]")


def _optional_float(text: str) -> float | None:
    return float(text) if text else None


def _conv_from_json(text: str) -> ConvGeometry | None:
    if not text:
        return None
    fields = json.loads(text)
    return ConvGeometry(
        in_channels=int(fields["in_channels"]),
        kernel_size=tuple(fields["kernel_size"]),
        stride=tuple(fields["stride"]),
        padding=tuple(fields["padding"]),
        groups=int(fields["groups"]),
    )


def layer_fields(program: LayerProgram) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and the string metadata of a layer program, as files store them."""
    tensors = {name: np.ascontiguousarray(getattr(program, name)) for name in LAYER_ARRAYS}
    metadata = {
        "codebook_sha256": program.codebook_sha256,
        "codebook_size": str(program.codebook_size),
        "codeword_length": str(program.codeword_length),
        "kind": program.kind,
        "in_features": str(program.in_features),
        "relu": "true" if program.relu else "false",
        "conv": json.dumps(dataclasses.asdict(program.conv)) if program.conv else "",
        "input_scale": repr(program.input_scale) if program.input_scale is not None else "",
        "output_scale": repr(program.output_scale) if program.output_scale is not None else "",
        "input_zero_point": str(program.input_zero_point),
        "output_zero_point": str(program.output_zero_point),
        "activation_bits": str(program.activation_bits),
    }
    return tensors, metadata


def save_layer(path: str | os.PathLike, program: LayerProgram) -> None:
    """Write ``program`` to ``path`` atomically."""
    save_artifact(path, LAYER_FORMAT, *layer_fields(program))


def _parse_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise InputError("expected 'true' or 'false'")
    return text == "true"


def layer_from_fields(
    path: str | os.PathLike, tensors: dict, metadata: dict, prefix: str = ""
) -> LayerProgram:
    """The validated layer program of :func:`layer_fields`' output, read from file ``path``;
    errors name the field as ``prefix + name``."""

    def get(container: dict, name: str, convert: Any = str) -> Any:
        return parse_field(path, container, name, convert, prefix)

    try:
        return LayerProgram(
            codebook_sha256=get(metadata, "codebook_sha256"),
            codebook_size=get(metadata, "codebook_size", int),
            codeword_length=get(metadata, "codeword_length", int),
            in_features=get(metadata, "in_features", int),
            indices=get(tensors, "indices", as_is),
            bias=get(tensors, "bias", as_is),
            mult=get(tensors, "mult", as_is),
            shift=get(tensors, "shift", as_is),
            relu=get(metadata, "relu", _parse_bool),
            kind=get(metadata, "kind"),
            conv=get(metadata, "conv", _conv_from_json),
            input_scale=get(metadata, "input_scale", _optional_float),
            output_scale=get(metadata, "output_scale", _optional_float),
            input_zero_point=get(metadata, "input_zero_point", int),
            output_zero_point=get(metadata, "output_zero_point", int),
            activation_bits=get(metadata, "activation_bits", int),
        )
    except ArtifactError as error:
        raise located(error, path, prefix) from None


def load_layer(path: str | os.PathLike, codebook: Codebook | None = None) -> LayerProgram:
    """Read and validate a layer program, and check it against ``codebook`` if one is given.

    Raises :class:`ArtifactError` naming the file and the field for a truncated or corrupted
    file, a wrong dtype or shape, an index out of range or a mismatched codebook hash.
    """
    tensors, metadata = read_verified(path, LAYER_FORMAT, PROGRAMS_UNCHANGED_SINCE)
    program = layer_from_fields(path, tensors, metadata)
    if codebook is not None:
        try:
            program.check_codebook(codebook)
        except ArtifactError as error:
            raise located(error, path) from None
    return program


def layer_accumulators(codebook: Codebook, program: LayerProgram, x: np.ndarray) -> np.ndarray:
    """Accumulators (int64) of ``program`` on its ``activation_bits``-wide inputs (int8 or
    int16).

    ``x`` is ``[B, N]`` for a linear layer and ``[B, C, H, W]`` for a conv2d layer.
    """
    program.check_codebook(codebook)
    expected = np.dtype(f"int{program.activation_bits}")
    if x.dtype != expected:
        raise InputError(f"activations must be {expected}, got {x.dtype}")
    args = (
        torch.from_numpy(codebook.codewords),
        torch.from_numpy(program.indices),
        torch.from_numpy(program.bias),
        torch.from_numpy(x),
    )
    if program.kind == "linear":
        return vq_gemm(*args).numpy()
    geometry = program.conv
    return vq_conv2d(
        *args,
        kernel_size=geometry.kernel_size,
        stride=geometry.stride,
        padding=geometry.padding,
        groups=geometry.groups,
        zero_point=program.input_zero_point,
    ).numpy()


def run_layer(codebook: Codebook, program: LayerProgram, x: np.ndarray) -> np.ndarray:
    """Outputs of ``program`` on inputs ``x``, both ``activation_bits`` wide (see
    :func:`layer_accumulators`)."""
    acc = torch.from_numpy(layer_accumulators(codebook, program, x))
    channel_axis = 1
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    mult = torch.from_numpy(program.mult).reshape(shape)
    shift = torch.from_numpy(program.shift).reshape(shape)
    return requantize(acc, mult, shift, program.relu, program.activation_bits).numpy()
