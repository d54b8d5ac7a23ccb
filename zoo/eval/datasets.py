"""The preprocessed arrays of the images a val_map lists, as a data set read memory-mapped on demand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ArgumentError, FormatError, MissingFileError
from .arrays import array_shape, npy_path, read_index, resolve_arrays_dir
from .imagenet_models import classifier_entry, preprocessing_name
from .val_map import ValEntry, read_val_map

__all__ = ["ArrayDataset", "open_arrays"]


class ArrayDataset:
    """The preprocessed arrays of the images ``entries`` names, read memory-mapped on demand.

    Checks up front that every array exists (or drops the missing ones when
    ``skip_missing``, listing them in :attr:`missing`) and that ``index.json``,
    if present, was written for ``model``. The layout comes from the index, else
    from the first array's shape.
    """

    def __init__(self, directory: str | os.PathLike, entries: Sequence[ValEntry], model: str,
                 skip_missing: bool = False) -> None:
        entry = classifier_entry(model)
        self.directory = Path(directory)
        index = read_index(self.directory)
        if index is not None and index.get("model") != model:
            raise ArgumentError(
                f"{self.directory} holds arrays preprocessed for {index.get('model')} "
                f"({index.get('preprocessing')}), not for {model} ({preprocessing_name(entry)})"
            )
        present = [e for e in entries if npy_path(self.directory, e.image).is_file()]
        self.missing = [e.image for e in entries if not npy_path(self.directory, e.image).is_file()]
        if self.missing and not skip_missing:
            shown = ", ".join(self.missing[:3]) + (" ..." if len(self.missing) > 3 else "")
            raise MissingFileError(
                f"{self.directory}: no array for {len(self.missing)} of the {len(entries)} images the val_map "
                f"lists ({shown}); preprocess them, or pass --skip-missing to leave them out"
            )
        if not present:
            raise MissingFileError(f"{self.directory}: none of the {len(entries)} images the val_map lists has an array")
        self.entries = present
        self.labels = np.array([e.label for e in present], dtype=np.int64)
        if index is not None:
            self.layout = index["layout"]
        else:
            first = np.load(self.path(0), mmap_mode="r")
            self.layout = "NCHW" if first.shape[:1] == (entry.input.channels,) else "NHWC"
        self.shape = array_shape(model, self.layout)

    def __len__(self) -> int:
        return len(self.entries)

    def path(self, i: int) -> Path:
        """The ``.npy`` file of entry ``i``."""
        return npy_path(self.directory, self.entries[i].image)

    def load(self, i: int) -> np.ndarray:
        """Entry ``i``'s array (memory-mapped), checked to be float32 of the expected shape."""
        path = self.path(i)
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise FormatError(f"{path}: not a readable .npy array ({error})") from None
        if array.shape != self.shape or array.dtype != np.float32:
            raise FormatError(f"{path}: array of {array.dtype} {array.shape}, expected float32 {self.shape} ({self.layout})")
        return array

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """The arrays of ``indices`` stacked into one float32 batch (this reads them)."""
        return np.stack([self.load(i) for i in indices])


def open_arrays(model: str, arrays: str | os.PathLike, val_map: str | os.PathLike, limit: int | None = None,
                skip_missing: bool = False) -> ArrayDataset:
    """The :class:`ArrayDataset` of the first ``limit`` images of ``val_map`` in ``arrays``
    (the preprocessing ``--out`` folder or the ``.npy`` folder itself)."""
    return ArrayDataset(resolve_arrays_dir(arrays, model), read_val_map(val_map)[:limit], model,
                        skip_missing=skip_missing)
