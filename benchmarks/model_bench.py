"""All batches of one model: build its modes, time them interleaved, check parity, rank, add the Keras-backend rows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

import harness
from modes import build_modes, example_batch, profile_compiled, torch_nets
from presets import Settings, benchmark_spec
from references import READS_FILE_EACH_CALL, prepare
from rows import make_row, rank
from zoo.registry import ModelEntry

KERAS_BACKENDS = ("jax", "torch")


def keras_backend_rows(entry: ModelEntry, weights: Path, cases: dict[str, np.ndarray], workdir: Path,
                       settings: Settings, batch_results: list[dict], gflop: float, ceiling_gflops: float,
                       log: Callable[[str], None]) -> str | None:
    """The Keras port on the JAX and torch backends (benchmarks/keras_backends.py), added to ``batch_results``' rows.

    ``cases`` holds ``x_{batch}`` (the Keras input) and ``ref_{batch}`` (the
    upstream output in the Keras layout). Each backend runs in its own process
    there; its rows get the same parity check (``entry.tolerance``) as every
    other row. Returns a note when the rows could not be measured at all, else None.
    """
    try:
        import keras_backends
    except ImportError as error:
        return f"Keras JAX/torch-backend rows: benchmarks/keras_backends.py is not available ({error})"
    model = entry.name
    path = workdir / f"{model}-keras-cases.npz"
    np.savez(path, **cases)
    by_batch = {b["batch"]: b for b in batch_results}
    for backend in KERAS_BACKENDS:
        try:
            measured = keras_backends.measure(model, backend, weights, path, settings.warmup, settings.repeats)
        except Exception as error:  # noqa: BLE001 - a failing backend is a row, not a crash
            measured = [{"mode": f"keras-{backend}", "backend": backend, "error": f"{type(error).__name__}: {error}"}]
        for item in measured:
            targets = [by_batch[item["batch"]]] if item.get("batch") in by_batch else list(by_batch.values())
            for batch_result in targets:
                batch = batch_result["batch"]
                reference = cases.get(f"ref_{batch}")
                tolerance = None if reference is None else entry.tolerance.bound(reference)
                batch_result["rows"].append(make_row(
                    batch, gflop, ceiling_gflops, tolerance, item.get("mode", f"keras-{backend}"), "keras",
                    item.get("description", f"zoo Keras on the {backend} backend (own process)"),
                    item.get("seconds") if "error" not in item else None, item.get("max_diff"),
                    error=str(item["error"])[:200] if item.get("error") else None, compile_s=item.get("compile_s")))
        log(f"{model}: Keras {backend} backend " + ", ".join(
            f"b{m.get('batch', '-')} {m['throughput']:.1f}" if m.get("throughput") else f"error {m.get('error')}"
            for m in measured))
    for batch_result in batch_results:
        rank(batch_result)
    return None


def _timed_rows(modes: list, batch: int, gflop: float, ceiling_gflops: float,
                tolerance: float | None, reference: np.ndarray | None) -> list[dict]:
    rows = []
    for mode in modes:
        diff, error = None, mode.error
        if mode.output is not None and reference is not None and mode.error is None:
            try:
                diff = harness.max_abs_diff(mode.output, reference)
            except ValueError as mismatch:
                error = str(mismatch)
        row = make_row(batch, gflop, ceiling_gflops, tolerance, mode.name, mode.kind, mode.description,
                       harness.median(mode.times), diff, error, mode.times, mode.setup_s, mode.compile_s)
        if error is not None and mode.error is None:
            row["exact"] = False
        rows.append(row)
    return rows


def bench_model(entry: ModelEntry, settings: Settings, threads: int, ceiling_gflops: float, workdir: Path,
                upstream_file: str | None, log: Callable[[str], None], keras_backends: bool = True,
                profile: bool = False) -> dict:
    """All batches of one model: rows with throughput, GFLOP/s, ratios and parity."""
    model = entry.name
    start = time.perf_counter()
    prep = prepare(entry, workdir, upstream_file)
    nets = torch_nets(prep, settings)
    size = settings.size(entry)
    gflop = harness.count_gflop(nets["eager"], example_batch(prep, 1, size)[0])
    log(f"{model}: stand-in and conversion {time.perf_counter() - start:.1f} s, {gflop:.2f} GFLOP per sample")
    spec = benchmark_spec(entry)
    result = {"model": model, "size": list(size), "gflop_per_sample": gflop,
              "published_gflop_per_sample": spec.published_gflop,
              "upstream_file": str(upstream_file) if upstream_file else "stand-in (random weights)",
              "unit": spec.unit, "sample": spec.sample, "batches": [], "notes": []}
    cases: dict[str, np.ndarray] = {}
    for batch in settings.batches(entry):
        modes, _, keras_input = build_modes(prep, batch, settings, threads, workdir, nets)
        repeats = settings.repeats if batch == 1 else settings.repeats_large
        harness.time_interleaved(modes, settings.warmup if batch == 1 else 1, repeats, settings.gap_s)
        reference = next((m.output for m in modes if m.kind == "reference" and m.error is None), None)
        tolerance = None if reference is None else entry.tolerance.bound(reference)
        rows = _timed_rows(modes, batch, gflop, ceiling_gflops, tolerance, reference)
        batch_result = {"batch": batch, "rows": rows}
        rank(batch_result)
        result["batches"].append(batch_result)
        if reference is not None:  # the Keras backends' input and reference, in Keras layouts
            cases[f"x_{batch}"] = keras_input
            cases[f"ref_{batch}"] = np.ascontiguousarray(entry.output.to_keras_layout(reference))
        upstream_row = next((r for r in rows if r["kind"] == "reference"), None)
        if batch == settings.batches(entry)[0] and upstream_row and READS_FILE_EACH_CALL in upstream_row["description"]:
            result["notes"].append("upstream times include reading the upstream file on every call: the stand-in "
                                   "has no reference_runner(upstream_file), so its x upstream ratios flatter the port")
        log(f"{model} batch {batch}: " + ", ".join(
            f"{r['mode']} {r['throughput']:.1f}" if r["throughput"] else f"{r['mode']} error" for r in rows))
    if profile and "compiled" in nets:
        result["profile"] = profile_compiled(prep, nets["compiled"], size)
    # Free this model's forms before the Keras backends' processes and the next model.
    nets.clear()
    if keras_backends:
        note = keras_backend_rows(entry, prep.weights, cases, workdir, settings, result["batches"], gflop,
                                  ceiling_gflops, log)
        if note:
            result["notes"].append(note)
    result["weights_bytes"] = prep.weights.stat().st_size
    result["source"] = str(prep.source)
    result["weights"] = str(prep.weights)
    return result
