"""MLPerf LoadGen rows for ``benchmarks/run.py``: SingleStream p90 latency and Offline samples/s per backend.

Each backend of :mod:`zoo.eval.mlperf` (``tf-upstream`` running the upstream
frozen graph, ``torch`` and ``keras`` in their fast forms as
``scripts/mlperf_run.py`` runs them by default (``zoo.fast_inference_model``,
compiled; ``zoo.keras.fast``), each checked against the model as built on its
first (warm-up) batch, and ``onnxruntime``) answers LoadGen's queries through the same
:class:`~zoo.eval.mlperf.ClassifierSUT` and query sample library, in
PerformanceOnly mode, with the same settings for every backend. The samples are
synthetic preprocessed arrays (random, NHWC float32, the layout of MLPerf's
cache) held in memory: no accuracy is scored, only time. Every metric is also
given as a speed ratio to ``tf-upstream`` measured in the same run (> 1: faster).

The settings are short on purpose (seconds, not MLPerf's 600 s minimum
duration): SingleStream runs at least ``single_stream_queries`` queries (64 is
the least for which LoadGen's early-stopping estimate of the 90th percentile
can be VALID) and ``single_stream_seconds``; Offline sends one query of
``offline_samples`` samples (in the full run the model's
``entry.benchmark.loadgen_offline_samples``) with no minimum duration, so every
backend does the same work. The rows apply to MLPerf models (``entry.mlperf``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from presets import benchmark_spec
from zoo.registry import ModelEntry

BACKENDS = ("tf-upstream", "torch", "keras", "onnxruntime")
SCENARIOS = ("SingleStream", "Offline")


@dataclass(frozen=True)
class LoadGenSettings:
    """The LoadGen settings every backend runs under (per model only the Offline query size differs)."""

    samples: int  # QSL size: synthetic arrays in memory
    single_stream_queries: int  # min_query_count
    single_stream_seconds: float  # min_duration
    # min_query_count = the one query's size; None: the model's entry.benchmark.loadgen_offline_samples.
    offline_samples: int | None = None
    max_batchsize: int = 32  # Offline batches (SingleStream runs batch 1)
    gap_s: float = 0.3  # sleep between runs so the previous runtime's threads go idle


FULL = LoadGenSettings(samples=64, single_stream_queries=64, single_stream_seconds=2.0, max_batchsize=32)
# --quick: structure, not figures; under 64 queries SingleStream reads INVALID (LoadGen's early stopping).
# Offline at batch 1 there, so that one ONNX export serves both scenarios.
QUICK = LoadGenSettings(samples=8, single_stream_queries=8, single_stream_seconds=0.0,
                        offline_samples=8, max_batchsize=1, gap_s=0.05)


class SyntheticArrays:
    """An in-memory stand-in for :class:`zoo.eval.datasets.ArrayDataset`: ``n`` random valid inputs of ``entry``.

    In the Keras layout (NHWC for an image, as MLPerf's preprocessed cache) at
    MLPerf's image size, drawn from the model's input range.
    """

    def __init__(self, entry: ModelEntry, n: int, seed: int = 0) -> None:
        size = (entry.mlperf.image_size,) * 2 if entry.mlperf else entry.input.default_size
        self.arrays = entry.input.example(n, size, seed=seed, framework="keras")
        self.layout = entry.input.layout("keras")
        self.shape = self.arrays.shape[1:]

    def __len__(self) -> int:
        return len(self.arrays)

    def load(self, i: int) -> np.ndarray:
        return self.arrays[i]

    def batch(self, indices) -> np.ndarray:
        return self.arrays[list(indices)]


def offline_samples(entry: ModelEntry, settings: LoadGenSettings) -> int:
    """The size of the Offline row's one query for ``entry`` under ``settings``."""
    if settings.offline_samples is not None:
        return settings.offline_samples
    return benchmark_spec(entry).loadgen_offline_samples


def _settings(lg, mlperf, entry: ModelEntry, scenario: str, settings: LoadGenSettings, dataset_size: int):
    test = mlperf.make_settings(lg, entry.name, scenario, "performance", dataset_size=dataset_size)
    test.max_duration_ms = 0  # no cap: min query count and min duration decide the end
    test.max_query_count = 0
    if scenario == "SingleStream":
        test.min_query_count = settings.single_stream_queries
        test.min_duration_ms = int(settings.single_stream_seconds * 1000)
    else:
        test.min_query_count = offline_samples(entry, settings)
        test.min_duration_ms = 0
        test.offline_expected_qps = 1.0  # the query's size is then min_query_count
    return test


def _error(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:200]


def measure(entry: ModelEntry, weights: str | Path, upstream: str | Path, workdir: Path,
            settings: LoadGenSettings = FULL, threads: int | None = None,
            log: Callable[[str], None] = lambda message: None) -> dict:
    """LoadGen runs of ``entry``'s model on every backend, SingleStream then Offline; rows with metric, VALID, ratio."""
    from zoo.eval import mlperf

    model = entry.name
    lg = mlperf.import_loadgen()
    dataset = SyntheticArrays(entry, settings.samples)
    predictors: dict[tuple[str, int], object] = {}
    rows = []
    for scenario in SCENARIOS:
        batch = 1 if scenario == "SingleStream" else settings.max_batchsize
        for backend in BACKENDS:
            row = {"scenario": scenario, "backend": backend, "metric": None, "unit": None, "value": None,
                   "result": None, "samples": None, "seconds": None, "setup_s": None, "error": None}
            rows.append(row)
            # onnxruntime's export has a static batch: one per scenario; the others serve both.
            key = (backend, batch if backend == "onnxruntime" else 0)
            try:
                if key not in predictors:
                    start = time.perf_counter()
                    predictors[key] = mlperf.make_backend(model, backend, weights=str(weights), upstream=str(upstream),
                                                          device="cpu", max_batchsize=batch, threads=threads)
                    row["setup_s"] = round(time.perf_counter() - start, 2)
                predictor = predictors[key]
                warm = dataset.batch(range(min(batch, len(dataset))))
                # As scripts/mlperf_run.py: the first call checks the fast form against the model as built and
                # compiles it for this shape; first calls of a shape are slow.
                for _ in range(2):
                    predictor(warm, dataset.layout)
                if getattr(predictor, "fast_check", None) is not None:
                    row["fast_check"] = predictor.fast_check.as_dict()
                time.sleep(settings.gap_s)
                out = workdir / "loadgen" / model / scenario / backend
                start = time.perf_counter()
                result = mlperf.run_loadgen(lg, model, dataset, predictor,
                                            _settings(lg, mlperf, entry, scenario, settings, len(dataset)), out,
                                            max_batchsize=settings.max_batchsize)
                row["seconds"] = round(time.perf_counter() - start, 2)
                summary = mlperf.parse_summary(out / mlperf.SUMMARY_LOG)
                row["metric"], row["value"], row["unit"] = mlperf.scenario_metric(summary, scenario)
                row["result"], row["samples"] = summary["Result is"], result.samples
                row["checks"] = {k: v for k, v in summary.items() if k.endswith("satisfied")}
            except Exception as error:  # noqa: BLE001 - a failing backend is a row, not a crash
                row["error"] = _error(error)
            log(f"{model} LoadGen {scenario} {backend}: "
                + (f"{row['value']:g} {row['unit']} ({row['result']})" if row["error"] is None else row["error"]))
        if scenario == "SingleStream" and settings.max_batchsize != 1:
            predictors.pop(("onnxruntime", 1), None)  # free the batch-1 ONNX session before Offline's
    for scenario in SCENARIOS:
        scenario_rows = [r for r in rows if r["scenario"] == scenario]
        upstream_row = next(r for r in scenario_rows if r["backend"] == "tf-upstream")
        for row in scenario_rows:
            both = upstream_row["value"] and row["value"]
            if not both:
                row["vs_upstream"] = None
            elif row["unit"] == "ns":  # latency: lower is faster
                row["vs_upstream"] = upstream_row["value"] / row["value"]
            else:
                row["vs_upstream"] = row["value"] / upstream_row["value"]
    predictors.clear()
    return {"model": model, "settings": {**asdict(settings), "offline_samples": offline_samples(entry, settings)},
            "rows": rows}


def markdown(results: list[dict]) -> list[str]:
    """The LoadGen table's lines (empty when there are no results)."""
    if not results:
        return []
    first = results[0]["settings"]
    lines = [
        "### MLPerf LoadGen (PerformanceOnly, synthetic preprocessed arrays in memory)", "",
        f"Same settings for every backend: SingleStream at least {first['single_stream_queries']} queries and "
        f"{first['single_stream_seconds']:g} s, metric the 90th-percentile latency; Offline one query of "
        + ", ".join(f"{r['settings']['offline_samples']} ({r['model']})" for r in results)
        + f" samples in batches of up to {first['max_batchsize']}, metric samples per second. "
        "x tf-upstream is the speed ratio (> 1: faster than TensorFlow on the upstream graph).", "",
        "| model | scenario | backend | metric | value | x tf-upstream | LoadGen result |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for result in results:
        for row in result["rows"]:
            if row["error"] is not None:
                lines.append(f"| {result['model']} | {row['scenario']} | {row['backend']} | - | - | - | "
                             f"error: {row['error'][:80]} |")
                continue
            if row["unit"] == "ns":
                metric, value = "p90 latency (ms)", f"{row['value'] / 1e6:.2f}"
            else:
                metric, value = "samples/s", f"{row['value']:.1f}"
            ratio = "-" if row["vs_upstream"] is None else f"{row['vs_upstream']:.2f}"
            lines.append(f"| {result['model']} | {row['scenario']} | {row['backend']} | {metric} | {value} | "
                         f"{ratio} | {row['result']} |")
    lines.append("")
    return lines
