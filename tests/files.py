"""Helpers that damage artifact files the way disks, transfers and other tools do."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import safetensors
import safetensors.numpy

from vq4all.golden.container import payload_sha256

__all__ = ["edit_as_another_tool", "flip_bit", "rewrite_header"]


def rewrite_header(path: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite a safetensors file's JSON header through ``edit``, keeping the data intact (and
    the payload hash as it was: an edit by hand)."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])


def edit_as_another_tool(path: Path, edit_metadata: Callable[[dict], None], **arrays) -> None:
    """Rewrite an artifact with its metadata edited by ``edit_metadata`` and some arrays
    replaced, and a payload hash that matches: a well-formed file whose content is wrong, so
    that what is checked is the fields, not the hash."""
    with safetensors.safe_open(str(path), framework="np") as reader:
        metadata = dict(reader.metadata())
        tensors = {name: reader.get_tensor(name) for name in reader.keys()}
    tensors.update(arrays)
    edit_metadata(metadata)
    metadata["payload_sha256"] = payload_sha256(tensors, metadata)
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)


def flip_bit(path: Path, offset_from_end: int) -> None:
    """Flip the lowest bit of the byte ``offset_from_end`` bytes before the end."""
    raw = bytearray(path.read_bytes())
    raw[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(raw))
