"""Helpers that damage artifact files the way disks, transfers and other tools do."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

__all__ = ["flip_bit", "rewrite_header"]


def rewrite_header(path: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite a safetensors file's JSON header through ``edit``, keeping the data intact."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])


def flip_bit(path: Path, offset_from_end: int) -> None:
    """Flip the lowest bit of the byte ``offset_from_end`` bytes before the end."""
    raw = bytearray(path.read_bytes())
    raw[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(raw))
