"""``scripts/verify_accuracy.py`` throughput against the bare model's, on synthetic arrays.

verify_accuracy.py runs ``zoo.eval.accuracy.evaluate_arrays``: it reads the
preprocessed ``.npy`` arrays through ``zoo.eval.prefetch.PrefetchLoader``
(background threads), runs the predictor and scores top-5. Here the same
function runs on random arrays written in MLPerf's cache layout, and the bare
model runs the same predictor on the same batches already in memory; the
ratio of their throughputs is what reading, prefetching and scoring cost.
The predictor is the one verify_accuracy.py runs by default: the fast form
(``zoo.fast_inference_model``, compiled), checked against the model as built
on its first batch (the warm-up here, which also compiles). Goal: >= 0.95.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from zoo.registry import ModelEntry


def write_synthetic_arrays(entry: ModelEntry, directory: Path, count: int, seed: int = 0) -> tuple[Path, Path]:
    """``count`` random valid inputs of ``entry`` (PyTorch layout, MLPerf's image size) as ``<image>.npy``,
    and a matching ``val_map.txt``."""
    arrays = directory / "arrays"
    arrays.mkdir(parents=True, exist_ok=True)
    size = (entry.mlperf.image_size,) * 2 if entry.mlperf else entry.input.default_size
    lines = []
    for i in range(count):
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        np.save(arrays / f"{name}.npy", entry.input.example(1, size, seed=seed + i, framework="torch")[0])
        lines.append(f"{name} {i % 1000}\n")
    val_map = directory / "val_map.txt"
    val_map.write_text("".join(lines))
    return arrays, val_map


def _evaluate(evaluate_arrays, model: str, arrays: Path, val_map: Path, predictor, batch_size: int):
    """Call ``evaluate_arrays`` as verify_accuracy.py does: on an ``ArrayDataset`` of the arrays and val_map."""
    from zoo.eval.arrays import resolve_arrays_dir
    from zoo.eval.datasets import ArrayDataset
    from zoo.eval.val_map import read_val_map

    dataset = ArrayDataset(resolve_arrays_dir(arrays, model), read_val_map(val_map), model)
    return evaluate_arrays(model, dataset, [predictor], batch_size=batch_size, progress=False)


def measure(entry: ModelEntry, weights: str, workdir: Path, count: int, batch_size: int, rounds: int = 3) -> dict:
    """Images/s of ``evaluate_arrays`` and of the bare torch predictor on the same ``count`` images."""
    from zoo.eval.accuracy import evaluate_arrays
    from zoo.eval.predictors import make_predictor

    model = entry.name
    layout = entry.input.layout("torch")
    arrays, val_map = write_synthetic_arrays(entry, workdir / f"eval-{model}", count)
    predictor = make_predictor(model, "torch", weights=weights, device="cpu")
    batches = [np.stack([np.load(p) for p in sorted(arrays.glob("*.npy"))[i:i + batch_size]])
               for i in range(0, count, batch_size)]
    predictor(batches[0], layout)  # warm-up: the first-batch check, the compile for this shape, oneDNN set-up
    predictor(batches[0], layout)
    bare_times: list[float] = []
    eval_times: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        for batch in batches:
            predictor(batch, layout)
        bare_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        _evaluate(evaluate_arrays, model, arrays, val_map, predictor, batch_size)
        eval_times.append(time.perf_counter() - start)
    bare = count / statistics.median(bare_times)
    evaluated = count / statistics.median(eval_times)
    return {
        "model": model,
        "images": count,
        "batch_size": batch_size,
        "bare_images_per_s": bare,
        "verify_accuracy_images_per_s": evaluated,
        "ratio": evaluated / bare,
        "form": "fast form, as verify_accuracy.py's default" if predictor.fast_check is not None else "as built",
        "fast_check": None if predictor.fast_check is None else predictor.fast_check.as_dict(),
    }
