"""ImageNet's ``val_map.txt``: one ``<image name> <label>`` per line, as MLPerf's ``imagenet.py`` reads it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import FormatError
from ..fileio import atomic_write_bytes

__all__ = ["ValEntry", "read_val_map", "write_val_map"]


@dataclass(frozen=True)
class ValEntry:
    """One ``val_map.txt`` line: the image's file name (relative to the image folder) and its label."""

    image: str
    label: int


def read_val_map(path: str | os.PathLike) -> list[ValEntry]:
    """Parse a ``val_map.txt``: ``<image> <label>`` per line; blank lines are ignored.

    Raises :class:`~zoo.errors.FormatError` naming the file and line for a line
    that is not two fields, a label that is not a non-negative integer, or an
    image named twice.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise FormatError(f"{path}: cannot read the val_map ({error.strerror or error})") from None
    entries: list[ValEntry] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = re.split(r"\s+", line.strip())  # imagenet.py's split
        if len(fields) != 2:
            raise FormatError(f"{path}:{number}: expected '<image> <label>', got {line.strip()!r}")
        image, label = fields
        if not label.isdigit():
            raise FormatError(f"{path}:{number}: label {label!r} is not a non-negative integer")
        if image in seen:
            raise FormatError(f"{path}:{number}: {image} is already listed on line {seen[image]}")
        seen[image] = number
        entries.append(ValEntry(image, int(label)))
    if not entries:
        raise FormatError(f"{path}: the val_map lists no images")
    return entries


def write_val_map(path: str | os.PathLike, entries: Sequence[ValEntry]) -> Path:
    """Write ``entries`` as a ``val_map.txt`` (atomically). Returns the path."""
    path = Path(path)
    payload = "".join(f"{e.image} {e.label}\n" for e in entries).encode()
    atomic_write_bytes(path, payload)
    return path
