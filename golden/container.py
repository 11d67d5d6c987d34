"""The container of every artifact: a safetensors file, validated on load.

Every artifact of the project (the codebook of :mod:`vq4all.golden.codebook`, the layer program
of :mod:`vq4all.golden.layer`, the network program of :mod:`vq4all.golden.network` and the
compressed checkpoint of :mod:`vq4all.model.checkpoint`) is a safetensors file written by
:func:`save_artifact` and read by :func:`read_verified`: the arrays are tensors, everything else
is string metadata, with ``format``, ``version`` and ``payload_sha256``, a SHA-256 of every
array and every metadata field. A flipped bit is caught as well as a truncation or an edited
field. Every field is validated on load (and on construction), and a failure raises
:class:`ArtifactError` naming the file and the field. Files are written atomically
(:mod:`vq4all.golden.fileio`), so a failed write never leaves a half-written artifact.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from vq4all.golden.errors import InputError
from vq4all.golden.fileio import write_atomically

__all__ = [
    "FORMAT_VERSION",
    "MEMORY",
    "PAYLOAD_FIELD",
    "PROGRAMS_UNCHANGED_SINCE",
    "UNCHANGED_SINCE",
    "ArtifactError",
    "artifact_metadata",
    "as_is",
    "check_array",
    "field_error",
    "located",
    "parse_field",
    "payload_sha256",
    "read_verified",
    "save_artifact",
]

#: Version 2: ``payload_sha256`` covers the metadata as well as the arrays. Version 3: layers
#: carry the zero points of their input and output. Version 4: layers carry their activation
#: width, and their bias is int64 (a 40-bit accumulator's). Version 5: a network program may
#: carry per-layer codebooks. Version 6: network programs have the host ops of real networks
#: (padding, reshapes, lookup tables, attention...), and a compressed checkpoint may carry its
#: model's structure (a torch.export program) and its codebook.
FORMAT_VERSION = "6"
#: The oldest version whose codebook and compressed checkpoint files read unchanged.
UNCHANGED_SINCE = "3"
#: The oldest version whose layer and network programs read unchanged: version 5 added a network
#: program's optional per-layer codebooks, which a version-4 one has none of.
PROGRAMS_UNCHANGED_SINCE = "4"
PAYLOAD_FIELD = "payload_sha256"


class ArtifactError(InputError):
    """An artifact is malformed, corrupted, or does not match what it is used with.

    The message starts with the file (or ``<memory>``) and names the offending field.
    """


MEMORY = "<memory>"


def field_error(field_name: str, problem: str) -> ArtifactError:
    return ArtifactError(f"{MEMORY}: field {field_name!r}: {problem}")


def located(
    error: ArtifactError, path: str | os.PathLike = MEMORY, prefix: str = ""
) -> ArtifactError:
    """``error`` (raised on an object in memory) located in file ``path``, its field named as
    ``prefix + field``: objects validate themselves, and whoever reads them from a file knows
    where they came from."""
    return ArtifactError(str(error).replace(f"{MEMORY}: field '", f"{path}: field '{prefix}", 1))


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


def check_array(name: str, array: Any, dtype: type, ndim: int) -> None:
    if not isinstance(array, np.ndarray):
        raise field_error(name, f"expected a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise field_error(name, f"dtype is {array.dtype}, expected {np.dtype(dtype)}")
    if array.ndim != ndim:
        raise field_error(name, f"shape {array.shape} is not {ndim}-dimensional")


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


def as_is(value: Any) -> Any:
    """The converter of :func:`parse_field` that takes a value unchanged (an array)."""
    return value
