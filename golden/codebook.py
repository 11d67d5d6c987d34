"""The codebook artifact (``format = vq4all.codebook``): the universal codebook, or (inside a
network program, see :mod:`vq4all.golden.network`) one layer's own.

Tensor ``codewords``: int8 ``[K, D]``; metadata ``scale`` (the float ``s_cb``), ``sha256``
(:func:`codebook_sha256`: the identity of the ROM contents, which every program names) and
``provenance`` (JSON: source networks, sub-vector count, bandwidth, seed, ...).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vq4all.golden.container import (
    UNCHANGED_SINCE,
    ArtifactError,
    as_is,
    check_array,
    field_error,
    located,
    parse_field,
    read_verified,
    save_artifact,
)

__all__ = ["CODEBOOK_FORMAT", "Codebook", "codebook_sha256", "load_codebook", "save_codebook"]

CODEBOOK_FORMAT = "vq4all.codebook"


def codebook_sha256(codewords: np.ndarray) -> str:
    """The identity of a codebook: SHA-256 of its shape and its int8 entries in row-major order."""
    rows, length = codewords.shape
    digest = hashlib.sha256(f"vq4all-codebook {rows}x{length}\n".encode())
    digest.update(np.ascontiguousarray(codewords, dtype=np.int8).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Codebook:
    """A codebook: int8 ``codewords [K, D]``; the float one is ``scale * codewords``. A universal
    codebook (the ROM's contents) has a power-of-two K; a layer's own codebook (per-layer VQ)
    any K >= 2, its indices ``ceil(log2 K)`` bits wide."""

    codewords: np.ndarray
    scale: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_array("codewords", self.codewords, np.int8, 2)
        rows, length = self.codewords.shape
        if rows < 2:
            raise field_error("codewords", f"K={rows} must be at least 2")
        if length < 1:
            raise field_error("codewords", f"D={length} must be at least 1")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise field_error("scale", f"{self.scale!r} is not a positive finite number")

    @property
    def K(self) -> int:  # noqa: N802 - the paper's name
        return self.codewords.shape[0]

    @property
    def D(self) -> int:  # noqa: N802 - the paper's name
        return self.codewords.shape[1]

    @property
    def index_bits(self) -> int:
        """Bits of one index: ``ceil(log2 K)``."""
        return (self.K - 1).bit_length()

    @property
    def sha256(self) -> str:
        return codebook_sha256(self.codewords)


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
            codewords=parse_field(path, tensors, "codewords", as_is),
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
