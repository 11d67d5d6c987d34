"""A reader of Qt's compiled resource files (``.rcc``), where applications such as GCompris keep
their pictures: a tree of named entries over a data block, each entry stored as is or
zlib-compressed (``qCompress``). Format versions 1 to 3 (Qt 5 and 6) are read; zstd-compressed
entries are refused by name, since no decoder ships with Python."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

__all__ = ["read_qt_resources"]

MAGIC = b"qres"
#: Per-entry flags of the tree.
COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4


def read_qt_resources(path: Path) -> dict[str, bytes]:
    """Every file in the resource file ``path``: its resource path (``dir/name.ext``, no
    leading slash) to its bytes, in tree order.

    Raises ``ValueError`` naming ``path`` and the field when the file is not a resource file
    of a known version or its tree, names or data point outside it."""
    blob = Path(path).read_bytes()

    def fail(field: str, problem: str) -> ValueError:
        return ValueError(f"{path}: field '{field}' {problem}")

    def unpack(field: str, layout: str, offset: int) -> tuple:
        if offset < 0 or offset + struct.calcsize(layout) > len(blob):
            raise fail(field, f"at byte {offset} lies outside the file ({len(blob)} bytes)")
        return struct.unpack_from(layout, blob, offset)

    if blob[:4] != MAGIC:
        raise fail("magic", f"is {blob[:4]!r}, not {MAGIC!r}: not a Qt resource file")
    version, tree, data, names = unpack("header", ">IIII", 4)
    if version not in (1, 2, 3):
        raise fail("version", f"is {version}, not 1, 2 or 3")
    node_size = 14 if version == 1 else 22  # version 2 added an 8-byte modification time

    def name(offset: int) -> str:
        (length,) = unpack("names", ">H", names + offset)
        start = names + offset + 6  # the length, then a 4-byte hash
        if start + 2 * length > len(blob):
            raise fail("names", f"entry at {offset} runs past the end of the file")
        return blob[start : start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    pending = [(0, "")]  # the root's node, and the path its children take
    visited = 0
    while pending:
        node, prefix = pending.pop(0)
        visited += 1
        if visited > len(blob) // node_size:
            raise fail("tree", "has more entries than the file can hold: it loops")
        name_offset, flags = unpack("tree", ">IH", tree + node * node_size)
        if flags & DIRECTORY:
            count, first = unpack("tree", ">II", tree + node * node_size + 6)
            here = f"{prefix}{name(name_offset)}/" if node else ""
            pending += [(first + child, here) for child in range(count)]
            continue
        entry = prefix + name(name_offset)
        (offset,) = unpack("tree", ">I", tree + node * node_size + 10)
        (size,) = unpack("data", ">I", data + offset)
        start = data + offset + 4
        if start + size > len(blob):
            raise fail("data", f"of {entry} runs past the end of the file")
        raw = blob[start : start + size]
        if flags & COMPRESSED_ZSTD:
            raise fail("flags", f"of {entry}: zstd compression is not supported")
        if flags & COMPRESSED:
            try:
                raw = zlib.decompress(raw[4:])  # qCompress: the size, then a zlib stream
            except zlib.error as error:
                raise fail("data", f"of {entry} is not a zlib stream: {error}") from None
        files[entry] = raw
    return files
