"""Preprocessing ImageNet JPEGs into MLPerf's cache, as MLPerf's ``imagenet.py`` does, in a pool of processes.

Each array is ``np.save`` of ``pre_process(cv2.imread(src), need_transpose=layout == "NCHW",
dims=[size, size, 3])``, ``pre_process`` being the model's registered
preprocessing (the ``dataset.py`` function ``entry.mlperf.preprocessing_function``
names). A missing or undecodable source image is skipped and counted.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import FormatError, MissingFileError, ZooError
from ..fileio import atomic_output
from ..progress import Progress
from .arrays import array_shape, arrays_dir, check_layout, npy_path, write_index
from .imagenet_models import array_size, mlperf_entry
from .val_map import read_val_map

__all__ = ["PreprocessResult", "preprocess_image", "preprocess_images"]


def preprocess_image(path: str | os.PathLike, model: str, layout: str = "NHWC") -> np.ndarray:
    """``cv2.imread`` the file and apply the model's MLPerf preprocessing (float32, MLPerf's image size).

    Raises :class:`~zoo.errors.MissingFileError` for a missing file and
    :class:`~zoo.errors.FormatError` for one OpenCV cannot decode
    (``cv2.imread`` returns None), both naming it.
    """
    import cv2

    entry = mlperf_entry(model)
    check_layout(layout)
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such image")
    # imagenet.py: img_org = cv2.imread(src) (BGR, 3 channels; greyscale JPEGs are expanded).
    image = cv2.imread(str(path))
    if image is None:
        raise FormatError(f"{path}: OpenCV cannot decode this image")
    return entry.load("preprocessing")(image, array_size(model)[0], channels_first=layout == "NCHW")


def _save_npy(path: Path, array: np.ndarray) -> None:
    # np.save on an open file writes exactly what imagenet.py's np.save(dst, processed) writes.
    with atomic_output(path) as f:
        np.save(f, array)


def _preprocess_one(task: tuple[str, str, str, str, str]) -> tuple[str, str, str]:
    """Worker: (image, "written" | "done" | "failed", reason)."""
    image, images_dir, out_dir, model, layout = task
    target = npy_path(Path(out_dir), image)
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
    entry = mlperf_entry(model)
    check_layout(layout)
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
    write_index(target, {
        "model": model,
        "mlperf_dataset": entry.mlperf.dataset,
        "preprocessing": entry.mlperf.preprocessing_function,
        "layout": layout,
        "shape": list(array_shape(model, layout)),
        "dtype": "float32",
        "images_dir": str(images.resolve()),
        "val_map": str(Path(val_map).resolve()),
        "count": len(entries) - len(failed),
        "images": [e.image for e in entries if e.image not in failed],
        "failed": [{"image": name, "reason": reason} for name, reason in result.failed],
    })
    return result
