"""Writing files so that nothing is ever half-written: every output of the project goes
through here. A payload is written to a temporary name in the same directory and renamed, so a
reader, or a crash, never sees part of a file. Standard library only."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["make_directory", "write_atomically", "write_csv", "write_json"]


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


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically (:func:`write_atomically`)."""
    write_atomically(path, (json.dumps(value, indent=1) + "\n").encode())


def write_csv(path: str | os.PathLike, rows: Iterable[dict], columns: list[str]) -> None:
    """Write ``rows`` (dicts with the keys ``columns``) as CSV with a header, atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, text.getvalue().encode())
