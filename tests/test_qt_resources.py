"""Qt resource files, read as Qt's ``rcc`` writes them and refused by field when corrupted, and
the GCompris photographs that MobileNetV2's benchmark reads from them."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vq4all.model.workloads import pictures as pictures_module
from vq4all.model.workloads.qt_resources import (
    COMPRESSED,
    COMPRESSED_ZSTD,
    DIRECTORY,
    read_qt_resources,
)


def qt_resource_file(files: dict[str, tuple[bytes, int]], version: int = 2) -> bytes:
    """A resource file as ``rcc`` lays it out: the header, the data, the names, then the tree,
    breadth first with each directory's children contiguous. ``files`` maps a path to its
    bytes and its flags (0, or :data:`COMPRESSED` to store it ``qCompress``-ed)."""
    root: dict = {}
    for path, content in files.items():
        *folders, name = path.split("/")
        here = root
        for folder in folders:
            here = here.setdefault(folder, {})
        here[name] = content
    nodes = [("", root)]  # breadth first: a directory's children get consecutive indices
    first_child = {}
    for index, (_, node) in enumerate(nodes):
        if isinstance(node, dict):
            first_child[index] = len(nodes)
            nodes += sorted(node.items())
    data, names, tree = bytearray(), bytearray(), bytearray()
    node_size = 14 if version == 1 else 22
    for index, (name, node) in enumerate(nodes):
        name_offset = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        if isinstance(node, dict):
            record = struct.pack(">IHII", name_offset, DIRECTORY, len(node), first_child[index])
        else:
            content, flags = node
            compressed = struct.pack(">I", len(content)) + zlib.compress(content)
            stored = compressed if flags & COMPRESSED else content
            record = struct.pack(">IHHHI", name_offset, flags, 0, 0, len(data))
            data += struct.pack(">I", len(stored)) + stored
        tree += record.ljust(node_size, b"\0")
    header = 20 if version < 3 else 24
    offsets = (header + len(data) + len(names), header, header + len(data))
    flags = b"" if version < 3 else b"\0" * 4
    return b"qres" + struct.pack(">IIII", version, *offsets) + flags + data + names + tree


@pytest.mark.parametrize("version", [1, 2, 3])
def test_every_file_reads_back_stored_or_compressed(tmp_path, version) -> None:
    files = {
        "gcompris/a/fish.webp": (b"\x01" * 300, 0),
        "gcompris/a/deep/board.qml": (b"import QtQuick\n" * 40, COMPRESSED),
        "gcompris/top.svg": (b"<svg/>", 0),
        "empty.txt": (b"", 0),
    }
    path = tmp_path / "activity.rcc"
    path.write_bytes(qt_resource_file(files, version))
    read = read_qt_resources(path)
    assert read == {name: content for name, (content, _) in files.items()}


def _corrupt(tmp_path, blob: bytes):
    path = tmp_path / "bad.rcc"
    path.write_bytes(blob)
    return path


def test_corrupted_files_are_refused_by_file_and_field(tmp_path) -> None:
    good = qt_resource_file({"d/pic.webp": (b"\x07" * 64, 0), "d/z.qml": (b"x" * 99, COMPRESSED)})
    with pytest.raises(ValueError, match=r"bad\.rcc: field 'magic'"):
        read_qt_resources(_corrupt(tmp_path, b"PK\x03\x04" + good[4:]))
    with pytest.raises(ValueError, match=r"bad\.rcc: field 'version' is 9"):
        read_qt_resources(_corrupt(tmp_path, good[:4] + struct.pack(">I", 9) + good[8:]))
    with pytest.raises(ValueError, match=r"bad\.rcc: field 'header'"):
        read_qt_resources(_corrupt(tmp_path, good[:10]))
    # The tree's offset pointing past the end, and a file cut inside its data.
    with pytest.raises(ValueError, match=r"bad\.rcc: field 'tree'"):
        read_qt_resources(_corrupt(tmp_path, good[:8] + struct.pack(">I", 10**6) + good[12:]))
    with pytest.raises(ValueError, match=r"bad\.rcc: field 'data' of d/pic\.webp"):
        data = struct.unpack(">I", good[12:16])[0]
        bloated = good[: data + 2] + b"\xff\xff" + good[data + 4 :]  # 65,535 bytes
        read_qt_resources(_corrupt(tmp_path, bloated))
    zlib_start = good.index(zlib.compress(b"x" * 99))
    broken = good[:zlib_start] + b"\0\0" + good[zlib_start + 2 :]
    with pytest.raises(ValueError, match=r"bad\.rcc: field 'data' of d/z\.qml is not a zlib"):
        read_qt_resources(_corrupt(tmp_path, broken))
    zstd = qt_resource_file({"d/pic.webp": (b"\x07", COMPRESSED_ZSTD)})
    with pytest.raises(ValueError, match=r"field 'flags' of d/pic\.webp: zstd"):
        read_qt_resources(_corrupt(tmp_path, zstd))


def _encoded(pixels: np.ndarray, format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def test_gcompris_photographs_are_extracted_once_each_and_split(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VQ4ALL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pictures_module, "GCOMPRIS_PHOTO_ACTIVITIES", ("animals", "monuments"))
    with pytest.raises(FileNotFoundError, match="apt-get install gcompris-qt-data"):
        pictures_module.gcompris_photos(tmp_path)
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(5)]
    # The same photograph at another size and encoding: kept once, so that it cannot both
    # evaluate and distil.
    again = np.asarray(Image.fromarray(photos[4]).resize((400, 300)))
    animals = {
        "gcompris/src/activities/animals/resource/cat.webp": (_encoded(photos[0], "WEBP"), 0),
        "gcompris/src/activities/animals/resource/dog.png": (_encoded(photos[1], "PNG"), 0),
        "gcompris/src/activities/animals/resource/icon.png": (_encoded(photos[2][:64], "PNG"), 0),
        "gcompris/src/activities/animals/resource/board.qml": (b"Item {}", COMPRESSED),
        "gcompris/src/activities/animals/resource/owl.jpg": (_encoded(photos[3], "JPEG"), 0),
    }
    monuments = {
        "gcompris/src/activities/monuments/resource/arch.png": (_encoded(photos[4], "PNG"), 0),
        "gcompris/src/activities/monuments/resource/arch2.webp": (_encoded(again, "WEBP"), 0),
    }
    (tmp_path / "animals.rcc").write_bytes(qt_resource_file(animals))
    (tmp_path / "monuments.rcc").write_bytes(qt_resource_file(monuments))
    calibration, evaluation = pictures_module.gcompris_photos(tmp_path)
    folder = tmp_path / "cache" / "gcompris"
    names = ["animals/resource/cat.webp", "animals/resource/dog.png"]
    names += ["animals/resource/owl.jpg", "monuments/resource/arch.png"]
    assert calibration == [folder / names[0], folder / names[2]]
    assert evaluation == [folder / names[1], folder / names[3]]
    assert not [path for path in folder.rglob("*") if path.name.startswith(".")]
    # Extracted byte for byte: the lossless ones decode to the original pixels.
    assert (folder / names[0]).read_bytes() == animals[f"gcompris/src/activities/{names[0]}"][0]
    assert np.array_equal(pictures_module.photo(folder / names[1]), photos[1])
    assert pictures_module.gcompris_photos(tmp_path) == (calibration, evaluation)
