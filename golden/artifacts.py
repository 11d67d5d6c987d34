"""The versioned artifact files: the universal codebook and the layer program.

Every artifact of the project (these two, the network program of :mod:`golden.network` and
the compressed checkpoint of ``model.checkpoint``) is a safetensors file written by
:func:`save_artifact` and read by :func:`read_verified`: the arrays are tensors, everything else
is string metadata, with ``format``, ``version`` and ``payload_sha256``, a SHA-256 of every
array and every metadata field. A flipped bit is caught as well as a truncation or an edited
field. Every field is validated on load (and on construction), and a failure raises
:class:`ArtifactError` naming the file and the field. Files are written to a temporary name in
the same directory and renamed, so a failed write never leaves a half-written artifact.

Codebook file (``format = vq4all.codebook``)
    tensor ``codewords``: int8 ``[K, D]``; metadata ``scale`` (the float ``s_cb``), ``sha256``
    (:func:`codebook_sha256`: the identity of the ROM contents, which every program names) and
    ``provenance`` (JSON: source networks, sub-vector count, bandwidth, seed, ...).

Layer program (``format = vq4all.layer``)
    tensors ``indices`` int32 ``[M, J]``, ``bias`` int64 ``[M]`` (accumulator units),
    ``mult``/``shift`` int32 ``[M]``; metadata ``codebook_sha256``, ``codebook_size`` (K),
    ``codeword_length`` (D), ``kind`` (``linear`` or ``conv2d``), ``in_features`` (N),
    ``relu``, ``conv`` (JSON geometry or empty), ``input_scale``/``output_scale`` (floats, or
    empty), ``input_zero_point``/``output_zero_point`` and ``activation_bits`` (the width of
    its input and output, 8 or 16, see :mod:`golden.numerics`).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy
import torch

from golden.numerics import (
    ACTIVATION_BITS,
    MULT_MAX,
    SHIFT_MAX,
    SHIFT_MIN,
    accumulator_bound,
    accumulator_range,
    activation_range,
)

__all__ = [
    "CODEBOOK_FORMAT",
    "LAYER_FORMAT",
    "FORMAT_VERSION",
    "UNCHANGED_SINCE",
    "MEMORY",
    "ArtifactError",
    "artifact_metadata",
    "check_activations",
    "Codebook",
    "ConvGeometry",
    "LayerProgram",
    "codebook_sha256",
    "layer_fields",
    "layer_from_fields",
    "load_codebook",
    "load_layer",
    "located",
    "make_directory",
    "parse_field",
    "payload_sha256",
    "read_verified",
    "save_artifact",
    "save_codebook",
    "save_layer",
    "write_atomically",
]

#: Version 2: ``payload_sha256`` covers the metadata as well as the arrays. Version 3: layers
#: carry the zero points of their input and output. Version 4: layers carry their activation
#: width, and their bias is int64 (a 40-bit accumulator's).
FORMAT_VERSION = "4"
#: The oldest version whose codebook and compressed checkpoint files read unchanged.
UNCHANGED_SINCE = "3"
PAYLOAD_FIELD = "payload_sha256"
CODEBOOK_FORMAT = "vq4all.codebook"
LAYER_FORMAT = "vq4all.layer"
LAYER_KINDS = ("linear", "conv2d")
LAYER_ARRAYS = ("indices", "bias", "mult", "shift")


class ArtifactError(ValueError):
    """An artifact is malformed, corrupted, or does not match what it is used with.

    The message starts with the file (or ``<memory>``) and names the offending field.
    """


MEMORY = "<memory>"


def _fail(field_name: str, problem: str) -> ArtifactError:
    return ArtifactError(f"{MEMORY}: field {field_name!r}: {problem}")


def located(
    error: ArtifactError, path: str | os.PathLike = MEMORY, prefix: str = ""
) -> ArtifactError:
    """``error`` (raised on an object in memory) located in file ``path``, its field named as
    ``prefix + field``: objects validate themselves, and whoever reads them from a file knows
    where they came from."""
    return ArtifactError(str(error).replace(f"{MEMORY}: field '", f"{path}: field '{prefix}", 1))


def codebook_sha256(codewords: np.ndarray) -> str:
    """The identity of a codebook: SHA-256 of its shape and its int8 entries in row-major order."""
    rows, length = codewords.shape
    digest = hashlib.sha256(f"vq4all-codebook {rows}x{length}\n".encode())
    digest.update(np.ascontiguousarray(codewords, dtype=np.int8).tobytes())
    return digest.hexdigest()


def payload_sha256(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """The hash stored as ``payload_sha256``: every array's name, dtype, shape and bytes, and
    every metadata field but the hash itself, so that no field that changes what is computed
    can change unnoticed."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name} {array.dtype.str} {array.shape}\n".encode())
        digest.update(array.tobytes())
    for name in sorted(metadata):
        if name != PAYLOAD_FIELD:
            digest.update(f"{json.dumps(name)}={json.dumps(metadata[name])}\n".encode())
    return digest.hexdigest()


def _check_array(name: str, array: Any, dtype: type, ndim: int) -> None:
    if not isinstance(array, np.ndarray):
        raise _fail(name, f"expected a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise _fail(name, f"dtype is {array.dtype}, expected {np.dtype(dtype)}")
    if array.ndim != ndim:
        raise _fail(name, f"shape {array.shape} is not {ndim}-dimensional")


@dataclass(frozen=True)
class Codebook:
    """The universal codebook: int8 ``codewords [K, D]``; the float one is ``scale * codewords``."""

    codewords: np.ndarray
    scale: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_array("codewords", self.codewords, np.int8, 2)
        rows, length = self.codewords.shape
        if rows < 2 or rows & (rows - 1):
            raise _fail("codewords", f"K={rows} is not a power of two >= 2")
        if length < 1:
            raise _fail("codewords", f"D={length} must be at least 1")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise _fail("scale", f"{self.scale!r} is not a positive finite number")

    @property
    def K(self) -> int:  # noqa: N802 - the paper's name
        return self.codewords.shape[0]

    @property
    def D(self) -> int:  # noqa: N802 - the paper's name
        return self.codewords.shape[1]

    @property
    def sha256(self) -> str:
        return codebook_sha256(self.codewords)


@dataclass(frozen=True)
class ConvGeometry:
    """How a conv2d layer's GEMM rows map onto an image (see :mod:`golden.numerics`)."""

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
            raise _fail("codebook_sha256", f"{sha!r} is not a SHA-256 hex digest")
        size = self.codebook_size
        if size < 2 or size & (size - 1):
            raise _fail("codebook_size", f"K={size} is not a power of two >= 2")
        if self.codeword_length < 1:
            raise _fail("codeword_length", f"D={self.codeword_length} must be at least 1")
        if self.in_features < 1:
            raise _fail("in_features", f"N={self.in_features} must be at least 1")
        if self.kind not in LAYER_KINDS:
            raise _fail("kind", f"{self.kind!r} is not one of {LAYER_KINDS}")
        if (self.kind == "conv2d") != (self.conv is not None):
            raise _fail(
                "conv", f"a {self.kind} layer {'needs' if self.conv is None else 'has no'} geometry"
            )
        for name in ("input_scale", "output_scale"):
            scale = getattr(self, name)
            if scale is not None and not (math.isfinite(scale) and scale > 0):
                raise _fail(name, f"{scale!r} is not a positive finite number")
        check_activations(
            self.activation_bits,
            {name: getattr(self, name) for name in ("input_zero_point", "output_zero_point")},
        )

    def _validate_arrays(self) -> None:
        _check_array("indices", self.indices, np.int32, 2)
        rows, blocks = self.indices.shape
        expected_blocks = -(-self.in_features // self.codeword_length)
        if rows < 1 or blocks != expected_blocks:
            raise _fail(
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
            raise _fail("indices", f"index {bad} is out of range [0, {self.codebook_size})")
        for name, dtype in (("bias", np.int64), ("mult", np.int32), ("shift", np.int32)):
            _check_array(name, getattr(self, name), dtype, 1)
            if getattr(self, name).shape != (rows,):
                raise _fail(name, f"shape {getattr(self, name).shape} does not match M={rows}")
        _check_range("mult", self.mult, 0, MULT_MAX)
        _check_range("shift", self.shift, SHIFT_MIN, SHIFT_MAX)
        bits = self.activation_bits
        inputs = blocks * self.codeword_length
        bound = accumulator_bound(torch.from_numpy(self.bias), inputs, bits)
        if bound.max() > accumulator_range(bits)[1]:
            channel = int(bound.argmax())
            raise _fail(
                "bias",
                f"channel {channel}: |bias| + {inputs} * 128 * {2 ** (bits - 1)} = "
                f"{int(bound[channel])} can overflow the {bits + 24}-bit accumulator",
            )
        if self.conv is not None:
            self._validate_conv(rows)

    def _validate_conv(self, rows: int) -> None:
        geometry = self.conv
        if geometry.groups < 1 or geometry.in_channels % geometry.groups or rows % geometry.groups:
            raise _fail(
                "conv",
                f"groups={geometry.groups} does not divide {geometry.in_channels} input and "
                f"{rows} output channels",
            )
        if geometry.inputs_per_channel != self.in_features:
            raise _fail(
                "conv",
                f"{geometry.in_channels}/{geometry.groups} channels x kernel "
                f"{geometry.kernel_size} "
                f"= {geometry.inputs_per_channel} inputs, but in_features is {self.in_features}",
            )

    def check_codebook(self, codebook: Codebook) -> None:
        """Raise :class:`ArtifactError` unless this layer was compressed against ``codebook``."""
        if self.codebook_sha256 != codebook.sha256:
            raise _fail(
                "codebook_sha256",
                f"{self.codebook_sha256[:16]}... does not match the codebook "
                f"{codebook.sha256[:16]}...",
            )
        if (self.codebook_size, self.codeword_length) != (codebook.K, codebook.D):
            raise _fail("codebook_size", "K/D do not match the codebook")


def check_activations(bits: Any, zero_points: dict[str, Any]) -> None:
    """Raise :class:`ArtifactError` unless ``bits`` (field ``activation_bits``) is an activation
    width and each of ``zero_points`` (by field name) a value of that width."""
    if bits not in ACTIVATION_BITS or type(bits) is not int:
        raise _fail("activation_bits", f"{bits!r} is not one of {ACTIVATION_BITS}")
    low, high = activation_range(bits)
    for name, zero_point in zero_points.items():
        if type(zero_point) is not int or not low <= zero_point <= high:
            raise _fail(name, f"{zero_point!r} is not a {bits}-bit activation value")


def _check_range(name: str, array: np.ndarray, low: int, high: int) -> None:
    if array.size and (array.min() < low or array.max() > high):
        bad = int(array.min() if array.min() < low else array.max())
        raise _fail(name, f"value {bad} is out of range [{low}, {high}]")


def write_atomically(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename, so that a reader
    (or a crash) never sees a half-written file.

    Raises ``FileNotFoundError`` naming a missing directory and ``IsADirectoryError`` when
    ``path`` is one, before anything is written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, "the output directory does not exist", str(path.parent)
        )
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file name", str(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def make_directory(path: str | os.PathLike) -> Path:
    """``path`` as a directory, created with its parents if missing; raise
    ``NotADirectoryError`` naming it when it (or a parent) is a file."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(part))
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_artifact(
    path: str | os.PathLike, file_format: str, tensors: dict[str, np.ndarray], metadata: dict
) -> None:
    """Write an artifact of ``file_format`` atomically, with its version and payload hash."""
    tensors = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    metadata = {"format": file_format, "version": FORMAT_VERSION, **metadata}
    metadata[PAYLOAD_FIELD] = payload_sha256(tensors, metadata)
    write_atomically(path, _sorted_header(safetensors.numpy.save(tensors, metadata=metadata)))


def _sorted_header(payload: bytes) -> bytes:
    """``payload``, a safetensors file, with its header's entries in name order: safetensors
    writes them in hash order, which differs from run to run, and the same artifact must be
    the same bytes. The tensors' data offsets do not depend on that order."""
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8 : 8 + size])
    header = {
        name: dict(sorted(entry.items())) if name == "__metadata__" else entry
        for name, entry in sorted(header.items())
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors aligns the data to 8 bytes
    return len(text).to_bytes(8, "little") + text + payload[8 + size :]


def artifact_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of artifact ``path``, unverified: enough to tell its ``format`` (or a
    codebook's ``sha256``) before reading it whole.

    Raises ``FileNotFoundError`` for a missing file, :class:`ArtifactError` for one that is not
    a readable safetensors file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    try:
        with safetensors.safe_open(str(path), framework="np") as reader:
            return dict(reader.metadata() or {})
    except Exception as error:  # safetensors raises several types for a damaged header
        raise ArtifactError(f"{path}: not a readable safetensors file ({error})") from None


def read_verified(
    path: str | os.PathLike, expected_format: str, since: str = FORMAT_VERSION
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata of an artifact of ``expected_format`` whose arrays and metadata
    match its ``payload_sha256``, of a version from ``since`` (the oldest whose files of that
    format read unchanged) to :data:`FORMAT_VERSION`.

    Raises :class:`ArtifactError` naming the file and the field for an unreadable (truncated)
    file, another format or version, or a payload that does not match its hash;
    ``FileNotFoundError`` for a missing file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    try:
        with safetensors.safe_open(str(path), framework="np") as reader:
            metadata = dict(reader.metadata() or {})
            tensors = {name: reader.get_tensor(name) for name in reader.keys()}
    except Exception as error:  # safetensors raises several types for a damaged header
        raise ArtifactError(f"{path}: not a readable safetensors file ({error})") from None
    found = metadata.get("format")
    if found != expected_format:
        raise ArtifactError(f"{path}: field 'format': {found!r} is not {expected_format!r}")
    readable = [str(version) for version in range(int(since), int(FORMAT_VERSION) + 1)]
    if metadata.get("version") not in readable:
        raise ArtifactError(
            f"{path}: field 'version': {metadata.get('version')!r} is not "
            + " or ".join(map(repr, readable))
        )
    stored = parse_field(path, metadata, PAYLOAD_FIELD)
    if stored != payload_sha256(tensors, metadata):
        raise ArtifactError(
            f"{path}: field {PAYLOAD_FIELD!r}: the arrays and fields do not hash to it "
            "(corrupted or edited)"
        )
    return tensors, metadata


def parse_field(
    path: str | os.PathLike, container: dict, name: str, convert: Any = str, prefix: str = ""
) -> Any:
    """``convert(container[name])``; raise :class:`ArtifactError` naming file ``path`` and field
    ``prefix + name`` when it is missing or ``convert`` rejects it."""
    if name not in container:
        raise ArtifactError(f"{path}: field {prefix + name!r} is missing")
    try:
        return convert(container[name])
    except (ValueError, TypeError, KeyError) as error:
        raise ArtifactError(
            f"{path}: field {prefix + name!r}: cannot parse {container[name]!r} ({error})"
        ) from None


def save_codebook(path: str | os.PathLike, codebook: Codebook) -> None:
    """Write ``codebook`` to ``path`` atomically."""
    metadata = {
        "scale": repr(float(codebook.scale)),
        "sha256": codebook.sha256,
        "provenance": json.dumps(codebook.provenance, sort_keys=True),
    }
    save_artifact(path, CODEBOOK_FORMAT, {"codewords": codebook.codewords}, metadata)


def load_codebook(path: str | os.PathLike) -> Codebook:
    """Read and validate a codebook file; raise :class:`ArtifactError` naming the bad field."""
    tensors, metadata = read_verified(path, CODEBOOK_FORMAT, UNCHANGED_SINCE)
    try:
        codebook = Codebook(
            codewords=parse_field(path, tensors, "codewords", _array),
            scale=parse_field(path, metadata, "scale", float),
            provenance=parse_field(path, metadata, "provenance", json.loads),
        )
    except ArtifactError as error:
        raise located(error, path) from None
    stored = parse_field(path, metadata, "sha256")
    if stored != codebook.sha256:
        raise ArtifactError(
            f"{path}: field 'sha256': the codewords do not hash to {stored[:16]}... (corrupted)"
        )
    return codebook


def _array(value: Any) -> Any:
    return value


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
        raise ValueError("expected 'true' or 'false'")
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
            indices=get(tensors, "indices", _array),
            bias=get(tensors, "bias", _array),
            mult=get(tensors, "mult", _array),
            shift=get(tensors, "shift", _array),
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
    tensors, metadata = read_verified(path, LAYER_FORMAT)
    program = layer_from_fields(path, tensors, metadata)
    if codebook is not None:
        try:
            program.check_codebook(codebook)
        except ArtifactError as error:
            raise located(error, path) from None
    return program
