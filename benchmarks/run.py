#!/usr/bin/env python3
"""Throughput of every way to run the registered models, against the upstream, with parity checked on each run.

    python benchmarks/run.py              # every registered model, several minutes on 2 cores
    python benchmarks/run.py --quick      # about a minute: fewer batches, repeats and modes
    python benchmarks/run.py --models MODEL --upstream MODEL=PATH   # one model, on its real upstream file
    python benchmarks/run.py --profile    # also torch.profiler's per-op table of the compiled form at batch 1
    python benchmarks/run.py --rerender   # measure nothing: re-render latest.md from latest.json

Per model (batch sizes and input size from its registry entry's benchmark
spec) it times, interleaved and after warm-up, the upstream (TensorFlow on the
frozen graph for a model with an upstream TF graph, else the stand-in's
reference forward), the zoo PyTorch port in several forms, the zoo Keras port
(and, in the default run, on the JAX and torch backends), the ONNX export in
ONNX Runtime, and a naive-padding baseline and symmetric-padding control
(benchmarks/modes.py). Every row carries its max |diff| against the upstream:
a mode that breaks the model's parity tolerance is flagged and never counted
as the fastest. It also measures the machine's fp32 matmul ceiling, each
converter's time and peak memory, verify_accuracy.py's throughput (classifiers),
the fast form's cold and warm compile time in fresh processes (not in --quick)
and, for MLPerf models, LoadGen's SingleStream and Offline rows, then writes
``latest.{md,json}`` (atomically) and prints the Markdown: a summary, the
targets (benchmarks/targets.py), then the per-model tables (benchmarks/report.py).

From Python (e.g. for a model registered with ``zoo.register_model``)::

    run.main(["--quick", "--models", name, "--out-dir", str(folder)])

runs in the calling process (no re-execution) and returns 0; the report is
``folder/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import compile_time  # noqa: E402
import conversion  # noqa: E402
import eval_io  # noqa: E402
import harness  # noqa: E402
import loadgen  # noqa: E402
from model_bench import bench_model  # noqa: E402
from presets import FULL, QUICK, Settings  # noqa: E402
from references import configure_tf  # noqa: E402
from report import RESULTS_DOC, markdown, update_results_doc  # noqa: E402
from targets import evaluate_targets  # noqa: E402
from zoo.cli import run_cli  # noqa: E402
from zoo.registry import ModelEntry, get_model_entry, list_models  # noqa: E402

# glibc hands freed blocks above 128 KiB back to the OS and trims the heap top, so every
# forward page-faults its activations in afresh, which on VMs costs more than a small
# layer's compute (docs/benchmarks.md has the measurements). Raising both thresholds keeps
# freed memory for reuse, as jemalloc/tcmalloc do; it applies to every runtime in the
# process alike. On by default, as a deployment would set it; --default-malloc keeps glibc's.
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(2**31), "MALLOC_TRIM_THRESHOLD_": str(2**31)}
MALLOC_MARK = "ZOO_BENCH_MALLOC_TUNED"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPORT_FORMAT = "zoo-benchmark/1"


def rerender(out_dir: Path, readme: bool) -> int:
    """Re-evaluate the targets of ``out_dir/latest.json`` (same measurements, current explanations) and re-render."""
    report = json.loads((out_dir / "latest.json").read_text())
    report["targets"] = evaluate_targets(report["models"], report["conversion"], report["verify_accuracy"],
                                         report.get("compile_time"))
    text = markdown(report)
    harness.write_json(out_dir / "latest.json", report)
    harness.write_atomic(out_dir / "latest.md", text)
    if readme:
        update_results_doc(RESULTS_DOC, text)
    print(text)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--models`` is checked against the registry as it is now."""
    models = list_models()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="about a minute: batch 1 and a small batch, fewer modes, no compile-time processes")
    parser.add_argument("--models", default=",".join(models), help=f"comma-separated subset of {','.join(models)}")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every runtime")
    parser.add_argument("--repeats", type=int, help="timed runs per mode (default: 5 full, 2 quick)")
    parser.add_argument("--upstream", action="append", default=[], metavar="MODEL=PATH",
                        help="a real upstream release file for MODEL (default: its stand-in)")
    parser.add_argument("--no-compile-time", action="store_true",
                        help="skip the cold/warm compile-time processes (never run in --quick)")
    parser.add_argument("--keras-backends", choices=("auto", "on", "off"), default="auto",
                        help="the Keras port on the JAX and torch backends, each in its own process "
                             "(auto: in the default run, not in --quick)")
    parser.add_argument("--profile", action="store_true",
                        help="print torch.profiler's per-op table of the compiled form at batch 1, per model")
    parser.add_argument("--no-conversion", action="store_true", help="skip the converter measurements")
    parser.add_argument("--no-eval", action="store_true", help="skip the verify_accuracy.py measurement")
    parser.add_argument("--no-loadgen", action="store_true",
                        help="skip the MLPerf LoadGen rows (SingleStream and Offline per backend; "
                             "--quick: tiny settings)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's malloc thresholds (by default the run re-executes itself with them raised, "
                             "so freed activations are reused, not page-faulted anew)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where latest.md and latest.json go")
    parser.add_argument("--rerender", action="store_true",
                        help="measure nothing: re-render latest.md (and with --readme the docs) from latest.json, "
                             "with the current explanations of missed targets (benchmarks/targets.json)")
    parser.add_argument("--readme", action="store_true",
                        help="also put the report into docs/benchmarks.md (between its benchmark markers)")
    args = parser.parse_args(argv)
    if args.rerender:
        return args
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - set(models))
    if unknown or not args.models:
        parser.error(f"--models takes a subset of {','.join(models)}" + (f"; unknown: {','.join(unknown)}"
                                                                           if unknown else ""))
    try:
        args.upstream = dict(item.split("=", 1) for item in args.upstream)
    except ValueError:
        parser.error("--upstream takes MODEL=PATH")
    return args


def _conversion_row(entry: ModelEntry, source: str, out: Path) -> dict:
    """The converter's time and peak memory in a fresh process, which imports it by its "module:attribute" path."""
    if not isinstance(entry.converter, str):
        return {"model": entry.name, "error": "the converter is an object, not a 'module:attribute' path, so a fresh "
                                              "process cannot import it to measure it"}
    return conversion.measure(entry.name, source, out, converter=entry.converter)


def _verify_accuracy_row(entry: ModelEntry, weights: str, workdir: Path, settings: Settings) -> dict:
    try:
        return eval_io.measure(entry, weights, workdir, settings.eval_images, max(settings.batches(entry)))
    except Exception as error:  # noqa: BLE001 - one failing measurement is a row, the run goes on
        return {"model": entry.name, "error": f"{type(error).__name__}: {error}"[:200]}


def measure_all(args: argparse.Namespace, settings: Settings, log) -> dict:
    """Every measurement of the run, as the report's sections (models, conversion, verify_accuracy, ...)."""
    torch.set_num_threads(args.threads)
    try:
        configure_tf(args.threads)
    except ImportError:
        log("TensorFlow is not installed: no upstream-graph or Keras rows")
    machine = harness.machine_description(args.threads)
    ceiling = harness.matmul_ceiling(args.threads, settings.ceiling_size)
    log(f"matmul ceiling {ceiling['gflops']:.1f} GFLOP/s ({ceiling['library']})")
    results, conversions, evaluation, loadgen_results, compiles = [], [], [], [], []
    keras_backends = args.keras_backends == "on" or (args.keras_backends == "auto" and not args.quick)
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        workdir = Path(tmp)
        for model in args.models:
            entry = get_model_entry(model)
            result = bench_model(entry, settings, args.threads, ceiling["gflops"], workdir,
                                 args.upstream.get(model), log, keras_backends=keras_backends, profile=args.profile)
            if not keras_backends:
                result["notes"].append("Keras JAX/torch-backend rows: not run (--quick or --keras-backends off; "
                                       "each backend starts its own process)")
            results.append(result)
            weights = Path(result["weights"])
            if not args.quick and not args.no_compile_time:
                rows = compile_time.measure(model, weights, settings.size(entry), settings.batches(entry), args.threads)
                compiles += rows
                log(f"{model}: compile time {rows}")
            if not args.no_conversion:
                item = _conversion_row(entry, result["source"], workdir / f"{model}-timed.safetensors")
                conversions.append(item)
                log(f"{model}: conversion {item}")
            if not args.no_eval and entry.is_classifier:
                evaluation.append(_verify_accuracy_row(entry, str(weights), workdir, settings))
                log(f"{model}: verify_accuracy {evaluation[-1]}")
            if not args.no_loadgen and entry.is_classifier and entry.mlperf is not None:
                loadgen_results.append(loadgen.measure(
                    entry, weights, result["source"], workdir, loadgen.QUICK if args.quick else loadgen.FULL,
                    threads=args.threads, log=log))
    return {"machine": machine, "ceiling": ceiling, "models": results, "conversion": conversions,
            "verify_accuracy": evaluation, "loadgen": loadgen_results, "compile_time": compiles}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write ``latest.md`` and ``latest.json``; print the Markdown.

    Called with ``argv`` (from Python), it runs in this process; from the command line
    (``argv`` None) it first re-executes itself with :data:`MALLOC_TUNING` unless told not to.
    """
    args = parse_args(argv)
    if args.rerender:
        return rerender(args.out_dir, args.readme)
    if (argv is None and not args.default_malloc and os.environ.get(MALLOC_MARK) != "1"
            and sys.platform.startswith("linux")):
        # Only from the command line, never replacing a caller's process.
        env = dict(os.environ, **MALLOC_TUNING, **{MALLOC_MARK: "1"})
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env)
    settings = QUICK if args.quick else FULL
    if args.repeats:
        settings = settings.with_repeats(args.repeats)
    began = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f} s] {message}", file=sys.stderr, flush=True)

    measured = measure_all(args, settings, log)
    report = {
        "format": REPORT_FORMAT,
        "quick": args.quick,
        "malloc_tuning": {k: os.environ.get(k) for k in MALLOC_TUNING},
        "repeats": settings.repeats,
        **measured,
        "wall_s": None,
    }
    report["targets"] = evaluate_targets(report["models"], report["conversion"], report["verify_accuracy"],
                                         report["compile_time"])
    report["wall_s"] = round(time.perf_counter() - began, 1)
    text = markdown(report)
    harness.write_json(args.out_dir / "latest.json", report)
    harness.write_atomic(args.out_dir / "latest.md", text)
    if args.readme:
        update_results_doc(RESULTS_DOC, text)
        log(f"updated {RESULTS_DOC}")
    print(text)
    log(f"wrote {args.out_dir / 'latest.md'} and latest.json in {report['wall_s']} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
