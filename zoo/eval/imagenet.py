"""Old import path of the val_map names, still used by ``tests/conftest.py``; new code imports :mod:`zoo.eval.val_map`."""

from __future__ import annotations

from .val_map import ValEntry, read_val_map, write_val_map

__all__ = ["ValEntry", "read_val_map", "write_val_map"]
