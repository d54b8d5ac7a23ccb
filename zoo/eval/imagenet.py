"""ImageNet validation data as MLPerf Inference handles it: labels, preprocessed arrays, batches.

Upstream: mlcommons/inference ``vision/classification_and_detection/python``.

* ``val_map.txt``: one ``<image name> <label>`` per line, split on whitespace
  (``imagenet.py``: ``re.split(r"\\s+", line.strip())``); labels 0..999 in
  sorted-wnid order.
* Preprocessed cache (``imagenet.py``): ``<cache_dir>/preprocessed/<dataset>/<layout>/<image name>.npy``,
  one ``np.save`` of ``pre_process(cv2.imread(src), need_transpose=layout == "NCHW",
  dims=[224, 224, 3])`` per image; ``<dataset>`` is the ``main.py`` profile's
  dataset name, ``imagenet`` (ResNet-50, ``pre_process_vgg``) or
  ``imagenet_mobilenet`` (MobileNet, ``pre_process_mobilenet``). A missing
  source image is skipped and counted.

zoo adds ``index.json`` beside the arrays (the model, layout and shape they
were made for, and the images that failed), so that an evaluation can refuse
arrays made for another model. Folders without it (MLPerf's own cache) work too.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import ArgumentError, FormatError, MissingFileError, ZooError
from ..fileio import atomic_output, atomic_write_bytes
from ..registry import get_model_entry

__all__ = [
    "ArrayDataset",
    "IMAGE_SIZE",
    "INDEX_NAME",
    "LAYOUTS",
    "MLPERF_DATASETS",
    "PrefetchLoader",
    "PreprocessResult",
    "Progress",
    "ValEntry",
    "arrays_dir",
    "open_arrays",
    "preprocess_image",
    "preprocess_images",
    "read_index",
    "read_val_map",
    "resolve_arrays_dir",
    "write_val_map",
]

IMAGE_SIZE = 224  # main.py: "image_size": [224, 224, 3] for both ImageNet profiles
LAYOUTS = ("NHWC", "NCHW")
INDEX_NAME = "index.json"
INDEX_FORMAT = "zoo-imagenet-arrays/1"
# main.py SUPPORTED_DATASETS: the dataset name that names the cache folder, per model.
MLPERF_DATASETS = {"resnet50": "imagenet", "mobilenet_v1": "imagenet_mobilenet"}
# dataset.py function each model's preprocessing restates (zoo.preprocessing).
MLPERF_PREPROCESSING = {"resnet50": "pre_process_vgg", "mobilenet_v1": "pre_process_mobilenet"}


def _check_model(model: str) -> None:
    if model not in MLPERF_DATASETS:
        raise ArgumentError(f"no ImageNet preprocessing for {model!r}; known: {', '.join(sorted(MLPERF_DATASETS))}")


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ArgumentError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


# --- val_map ---------------------------------------------------------------------------

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


# --- preprocessing ---------------------------------------------------------------------

def arrays_dir(root: str | os.PathLike, model: str, layout: str = "NHWC") -> Path:
    """MLPerf's cache folder under ``root``: ``root/preprocessed/<dataset>/<layout>``."""
    _check_model(model)
    _check_layout(layout)
    return Path(root) / "preprocessed" / MLPERF_DATASETS[model] / layout


def preprocess_image(path: str | os.PathLike, model: str, layout: str = "NHWC") -> np.ndarray:
    """``cv2.imread`` the file and apply the model's MLPerf preprocessing (float32, 224x224).

    Raises ``FileNotFoundError`` for a missing file and :class:`~zoo.errors.FormatError`
    for one OpenCV cannot decode (``cv2.imread`` returns None), both naming it.
    """
    import cv2

    _check_model(model)
    _check_layout(layout)
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such image")
    # imagenet.py: img_org = cv2.imread(src) (BGR, 3 channels; greyscale JPEGs are expanded).
    image = cv2.imread(str(path))
    if image is None:
        raise FormatError(f"{path}: OpenCV cannot decode this image")
    preprocess = get_model_entry(model).load("preprocessing")
    return preprocess(image, IMAGE_SIZE, channels_first=layout == "NCHW")


def _save_npy(path: Path, array: np.ndarray) -> None:
    # np.save on an open file writes exactly what imagenet.py's np.save(dst, processed) writes.
    with atomic_output(path) as f:
        np.save(f, array)


def _npy_path(directory: Path, image: str) -> Path:
    return directory / f"{image}.npy"  # np.save(dst) appends ".npy" to the image's own name


def _preprocess_one(task: tuple[str, str, str, str, str]) -> tuple[str, str, str]:
    """Worker: (image, "written" | "done" | "failed", reason)."""
    image, images_dir, out_dir, model, layout = task
    target = _npy_path(Path(out_dir), image)
    if target.is_file():
        return image, "done", ""
    try:
        array = preprocess_image(Path(images_dir) / image, model, layout)
    except (FileNotFoundError, FormatError) as error:
        return image, "failed", str(error)
    _save_npy(target, array)
    return image, "written", ""


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # one image per process: no nested thread pools


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, every 10 % otherwise)."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None) -> None:
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.tty = self.enabled and self.stream.isatty()
        self.start = time.perf_counter()
        self._last_decile = -1

    def update(self, count: int = 1) -> None:
        """Advance by ``count`` and redraw."""
        self.done += count
        if not self.enabled:
            return
        fraction = self.done / self.total
        decile = int(fraction * 10)
        if not self.tty and decile == self._last_decile and self.done < self.total:
            return
        self._last_decile = decile
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        bar = "#" * int(fraction * 30)
        line = f"{self.label} [{bar:<30}] {self.done}/{self.total} ({rate:.1f}/s)"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class PreprocessResult:
    """What :func:`preprocess_images` did: counts, the failures by name, where the arrays are."""

    out_dir: Path
    written: int = 0
    already_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> int:
        """Images that have an array now."""
        return self.written + self.already_done


def preprocess_images(
    model: str,
    images: str | os.PathLike,
    val_map: str | os.PathLike,
    out: str | os.PathLike,
    layout: str = "NHWC",
    workers: int = 1,
    strict: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Preprocess the images ``val_map`` lists into ``arrays_dir(out, model, layout)``.

    One ``.npy`` per image (MLPerf's cache layout; each written to a temporary
    name and renamed), then ``index.json``. Images whose array exists are
    skipped, so an interrupted run can be restarted. A missing or undecodable
    image is reported by name on stderr and counted; with ``strict`` the first
    one raises :class:`~zoo.errors.ZooError`. ``workers`` > 1 preprocesses in
    that many processes.
    """
    _check_model(model)
    _check_layout(layout)
    entries = read_val_map(val_map)[:limit]
    images = Path(images)
    if not images.is_dir():
        raise MissingFileError(f"{images}: no such image folder")
    target = arrays_dir(out, model, layout)
    target.mkdir(parents=True, exist_ok=True)
    result = PreprocessResult(target)
    tasks = [(e.image, str(images), str(target), model, layout) for e in entries]
    bar = Progress(len(tasks), f"{model} {layout}", enabled=progress)
    executor: Executor | None = None
    try:
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: forking a process that already runs threads (TensorFlow's,
            # PyTorch's, a test runner's) can deadlock the children.
            executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_worker_init)
            outcomes: Iterator[tuple[str, str, str]] = executor.map(_preprocess_one, tasks, chunksize=8)
        else:
            outcomes = map(_preprocess_one, tasks)
        for image, status, reason in outcomes:
            bar.update()
            if status == "written":
                result.written += 1
            elif status == "done":
                result.already_done += 1
            else:
                if strict:
                    raise ZooError(f"{reason} (--strict: stopping at the first bad image)")
                result.failed.append((image, reason))
                print(f"\nskipped {image}: {reason}" if bar.tty else f"skipped {image}: {reason}", file=sys.stderr)
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    failed = {name for name, _ in result.failed}
    shape = (3, IMAGE_SIZE, IMAGE_SIZE) if layout == "NCHW" else (IMAGE_SIZE, IMAGE_SIZE, 3)
    index = {
        "format": INDEX_FORMAT,
        "model": model,
        "mlperf_dataset": MLPERF_DATASETS[model],
        "preprocessing": MLPERF_PREPROCESSING[model],
        "layout": layout,
        "shape": list(shape),
        "dtype": "float32",
        "images_dir": str(images.resolve()),
        "val_map": str(Path(val_map).resolve()),
        "count": len(entries) - len(failed),
        "images": [e.image for e in entries if e.image not in failed],
        "failed": [{"image": name, "reason": reason} for name, reason in result.failed],
    }
    payload = (json.dumps(index, indent=1) + "\n").encode()
    atomic_write_bytes(target / INDEX_NAME, payload)
    return result


# --- reading arrays --------------------------------------------------------------------

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

    Raises ``FileNotFoundError`` when neither exists, and ``ValueError`` when
    both an NHWC and an NCHW folder exist (name the one to use).
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingFileError(f"{path}: no such arrays folder")
    if (path / INDEX_NAME).is_file() or next(path.glob("*.npy"), None) is not None:
        return path
    found = [d for d in (arrays_dir(path, model, layout) for layout in LAYOUTS) if d.is_dir()]
    if len(found) == 1:
        return found[0]
    if found:
        raise ArgumentError(f"{path} holds both {found[0]} and {found[1]}; pass the one to evaluate as --arrays")
    raise MissingFileError(
        f"{path}: no .npy arrays, and no {arrays_dir(path, model, 'NHWC').relative_to(path).parent}/<layout> folder "
        f"(run scripts/preprocess_imagenet.py {model} first)"
    )


class ArrayDataset:
    """The preprocessed arrays of the images ``entries`` names, read memory-mapped on demand.

    Checks up front that every array exists (or drops the missing ones when
    ``skip_missing``, listing them in :attr:`missing`) and that ``index.json``,
    if present, was written for ``model``. The layout comes from the index, else
    from the first array's shape.
    """

    def __init__(self, directory: str | os.PathLike, entries: Sequence[ValEntry], model: str,
                 skip_missing: bool = False) -> None:
        _check_model(model)
        self.directory = Path(directory)
        index = read_index(self.directory)
        if index is not None and index.get("model") != model:
            raise ArgumentError(
                f"{self.directory} holds arrays preprocessed for {index.get('model')} "
                f"({index.get('preprocessing')}), not for {model} ({MLPERF_PREPROCESSING[model]})"
            )
        present = [e for e in entries if _npy_path(self.directory, e.image).is_file()]
        self.missing = [e.image for e in entries if not _npy_path(self.directory, e.image).is_file()]
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
            self.layout = "NCHW" if first.shape[:1] == (3,) else "NHWC"
        self.shape = (3, IMAGE_SIZE, IMAGE_SIZE) if self.layout == "NCHW" else (IMAGE_SIZE, IMAGE_SIZE, 3)

    def __len__(self) -> int:
        return len(self.entries)

    def path(self, i: int) -> Path:
        """The ``.npy`` file of entry ``i``."""
        return _npy_path(self.directory, self.entries[i].image)

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


class PrefetchLoader:
    """Batches of an :class:`ArrayDataset`, read ahead by background threads.

    Iterating yields ``(indices, batch)`` in order; up to ``prefetch`` batches
    are read while the caller computes, so the model does not wait on I/O
    (``np.load`` and the copy release the GIL). An error reading a batch is
    raised where that batch is consumed.
    """

    def __init__(self, dataset: ArrayDataset, indices: Sequence[int], batch_size: int,
                 prefetch: int = 4, threads: int = 2) -> None:
        if batch_size < 1:
            raise ArgumentError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batches = [list(indices[i:i + batch_size]) for i in range(0, len(indices), batch_size)]
        self.prefetch = max(1, prefetch)
        self.threads = max(1, threads)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[list[int], np.ndarray]]:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="zoo-prefetch") as pool:
            pending: deque[tuple[list[int], Future]] = deque()
            upcoming = iter(self.batches)
            try:
                for batch in upcoming:
                    pending.append((batch, pool.submit(self.dataset.batch, batch)))
                    if len(pending) >= self.prefetch:
                        break
                while pending:
                    batch, future = pending.popleft()
                    nxt = next(upcoming, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(self.dataset.batch, nxt)))
                    yield batch, future.result()
            finally:
                for _, future in pending:
                    future.cancel()
