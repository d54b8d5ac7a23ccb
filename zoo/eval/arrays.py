"""Where preprocessed ImageNet arrays live: MLPerf's cache folders, one ``.npy`` per image, and zoo's index.

MLPerf's ``imagenet.py`` caches ``<root>/preprocessed/<dataset>/<layout>/<image name>.npy``,
where ``<dataset>`` is the model's ``main.py`` dataset (``entry.mlperf.dataset``).
zoo adds ``index.json`` beside the arrays (the model, layout and shape they
were made for, and the images that failed), so that an evaluation can refuse
arrays made for another model. Folders without it (MLPerf's own cache) work too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ArgumentError, FormatError, MissingFileError
from ..fileio import atomic_write_bytes
from .imagenet_models import array_size, classifier_entry, mlperf_entry

__all__ = [
    "INDEX_FORMAT",
    "INDEX_NAME",
    "LAYOUTS",
    "array_shape",
    "arrays_dir",
    "check_layout",
    "npy_path",
    "read_index",
    "resolve_arrays_dir",
    "write_index",
]

LAYOUTS = ("NHWC", "NCHW")
INDEX_NAME = "index.json"
INDEX_FORMAT = "zoo-imagenet-arrays/1"


def check_layout(layout: str) -> None:
    """:class:`~zoo.errors.ArgumentError` unless ``layout`` is one of :data:`LAYOUTS`."""
    if layout not in LAYOUTS:
        raise ArgumentError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


def array_shape(model: str, layout: str) -> tuple[int, int, int]:
    """The shape of one preprocessed image of ``model`` in ``layout``."""
    (height, width), channels = array_size(model), classifier_entry(model).input.channels
    return (channels, height, width) if layout == "NCHW" else (height, width, channels)


def arrays_dir(root: str | os.PathLike, model: str, layout: str = "NHWC") -> Path:
    """MLPerf's cache folder under ``root``: ``root/preprocessed/<dataset>/<layout>``."""
    entry = mlperf_entry(model)
    check_layout(layout)
    return Path(root) / "preprocessed" / entry.mlperf.dataset / layout


def npy_path(directory: Path, image: str) -> Path:
    """The array of ``image``: ``np.save(dst)`` appends ``.npy`` to the image's own name."""
    return directory / f"{image}.npy"


def write_index(directory: Path, index: dict) -> Path:
    """Write ``index`` (with its format tag) as the folder's ``index.json``, atomically."""
    payload = (json.dumps({"format": INDEX_FORMAT, **index}, indent=1) + "\n").encode()
    return atomic_write_bytes(directory / INDEX_NAME, payload)


def read_index(directory: str | os.PathLike) -> dict | None:
    """The ``index.json`` of an arrays folder, or None when it has none (e.g. MLPerf's own cache)."""
    path = Path(directory) / INDEX_NAME
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise FormatError(f"{path}: not a readable index ({error})") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise FormatError(f"{path}: not a zoo arrays index (format {INDEX_FORMAT!r} expected)")
    return index


def resolve_arrays_dir(path: str | os.PathLike, model: str) -> Path:
    """The folder holding the ``.npy`` files: ``path`` itself, or MLPerf's ``preprocessed/<dataset>/<layout>`` under it.

    Raises :class:`~zoo.errors.MissingFileError` when neither exists, and
    :class:`~zoo.errors.ArgumentError` when both an NHWC and an NCHW folder
    exist (name the one to use).
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingFileError(f"{path}: no such arrays folder")
    if (path / INDEX_NAME).is_file() or next(path.glob("*.npy"), None) is not None:
        return path
    if classifier_entry(model).mlperf is None:  # no MLPerf cache folder to look for
        raise MissingFileError(f"{path}: no .npy arrays")
    found = [d for d in (arrays_dir(path, model, layout) for layout in LAYOUTS) if d.is_dir()]
    if len(found) == 1:
        return found[0]
    if found:
        raise ArgumentError(f"{path} holds both {found[0]} and {found[1]}; pass the one to evaluate as --arrays")
    raise MissingFileError(
        f"{path}: no .npy arrays, and no {arrays_dir(path, model, 'NHWC').relative_to(path).parent}/<layout> folder "
        f"(run scripts/preprocess_imagenet.py {model} first)"
    )
