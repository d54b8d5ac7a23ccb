#!/usr/bin/env python3
"""MLPerf Inference LoadGen run of a classifier on preprocessed ImageNet arrays: accuracy or performance.

    python scripts/mlperf_run.py resnet50 --weights r.safetensors --arrays cache/ --val-map val_map.txt \\
        --scenario Offline --mode accuracy --output out/
    python scripts/mlperf_run.py mobilenet_v1 --weights mlperf --arrays cache/ --val-map val_map.txt \\
        --scenario SingleStream --mode performance --output perf/ --time 60

An accuracy run scores OUT/mlperf_log_accuracy.json as MLPerf's
tools/accuracy-imagenet.py does, prints its line and the difference to the
MLPerf reference top-1, and writes OUT/accuracy.json. A performance run prints
LoadGen's VALID/INVALID, the scenario's metric and where the summary is.

The torch and keras backends run the ports' fast forms (torch: compiled with
zoo.fast_inference_model; keras: zoo.keras.fast), checked against the model as
built on the first batch before LoadGen starts; --plain runs the ports as built.
"""

from __future__ import annotations

import argparse
import os

from zoo.cli import run_cli
from zoo.eval.cli_args import add_classifier_arguments
from zoo.eval.datasets import open_arrays
from zoo.eval.imagenet_models import mlperf_models
from zoo.eval.mlperf import ACCURACY_LOG, BACKENDS, MODES, SCENARIOS, SUMMARY_LOG
from zoo.registry import get_model_entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_classifier_arguments(parser, "torch, keras, onnxruntime", mlperf_models())
    # Checked by zoo.eval.mlperf (one error: line) rather than argparse, so the message names the known ones.
    parser.add_argument("--scenario", required=True, help=f"one of {', '.join(SCENARIOS)}")
    parser.add_argument("--mode", required=True, choices=sorted(MODES))
    parser.add_argument("--output", required=True, help="folder for LoadGen's logs and accuracy.json")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--count", type=int, help="only the first N images; min and max query count N")
    parser.add_argument("--time", type=float, help="min (and max) duration in seconds")
    parser.add_argument("--qps", type=float, help="Server target qps, Offline expected qps, 1/qps expected latency")
    parser.add_argument("--max-batchsize", type=int, default=32, help="largest batch the SUT runs (not SingleStream)")
    parser.add_argument("--user-conf", help="LoadGen user.conf, applied after the built-in mlperf.conf")
    parser.add_argument("--threads", type=int, default=1, help="SUT worker threads")
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        parser.error("--count must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")

    from zoo.eval import mlperf

    # Everything cheap first: a bad scenario, a missing LoadGen or bad arrays are reported before model loading.
    mlperf.check_scenario(args.scenario)
    lg = mlperf.import_loadgen()
    dataset = open_arrays(args.model, args.arrays, args.val_map, limit=args.count)
    # The batch the SUT runs most (one SingleStream sample; a full batch otherwise): the fast form's check
    # runs on it and, compiled, compiles for its shape before LoadGen's clock starts.
    batch = 1 if args.scenario == "SingleStream" else args.max_batchsize
    first = dataset.batch(range(min(len(dataset), batch)))  # also checks dtype, shape, layout
    settings = mlperf.make_settings(lg, args.model, args.scenario, args.mode, user_conf=args.user_conf,
                                    count=args.count, seconds=args.time, qps=args.qps, dataset_size=len(dataset))
    predictor = mlperf.make_backend(args.model, args.backend, weights=args.weights, upstream=args.upstream,
                                    device=args.device, max_batchsize=batch, threads=None, fast=not args.plain,
                                    check_batch=first, batch_layout=dataset.layout)
    if predictor.fast_check is not None:
        print(predictor.fast_check.line())
    # Warm-up, as main.py does before the test (first calls of a shape are slow: allocation, oneDNN set-up).
    for _ in range(2):
        predictor(first, dataset.layout)
    result = mlperf.run_loadgen(lg, args.model, dataset, predictor, settings, args.output,
                                max_batchsize=args.max_batchsize, threads=args.threads)
    print(f"{args.model} ({args.backend}) {args.scenario} {args.mode}: {result.samples} samples; logs in {result.output}")
    if args.mode in ("accuracy", "submission"):
        log = result.output / ACCURACY_LOG
        score = mlperf.score_accuracy_log(log, dataset.labels.tolist())
        print(mlperf.accuracy_line(score))
        reference = get_model_entry(args.model).reference_metric.get("top1")
        if reference is not None:
            print(f"MLPerf reference top-1 {reference:.3f}%; difference {score.percent - reference:+.3f} points")
        info = {"backend": args.backend, "scenario": args.scenario, "mode": args.mode,
                "weights": None if args.weights is None else os.fspath(args.weights), "upstream": args.upstream,
                "val_map": os.fspath(args.val_map), "arrays": str(dataset.directory), "accuracy_log": str(log)}
        path = mlperf.write_accuracy_report(result.output / "accuracy.json", args.model, score, info)
        print(f"report: {path}")
    if args.mode in ("performance", "submission"):
        summary_path = result.output / SUMMARY_LOG
        summary = mlperf.parse_summary(summary_path)
        name, value, unit = mlperf.scenario_metric(summary, args.scenario)
        print(f"Result is {summary['Result is']}; {name}: {value:g} {unit}")
        print(f"summary: {summary_path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
