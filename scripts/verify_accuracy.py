#!/usr/bin/env python3
"""Top-1/top-5 of a classifier on preprocessed ImageNet arrays, against MLPerf's reference number.

    python scripts/verify_accuracy.py mobilenet_v1 --weights m.safetensors --arrays cache/ --val-map val_map.txt
    torchrun --nproc_per_node 4 scripts/verify_accuracy.py resnet50 --weights r.safetensors --arrays cache/ --val-map val_map.txt

Under torchrun the arrays are sharded across ranks (NCCL on GPU, gloo on CPU)
and rank 0 prints and writes the report; the result equals a single process's.

The ports run in their fast form by default (torch: zoo.fast_inference_model,
batch norm folded, channels_last, compiled; keras: zoo.keras.fast), checked
against the model as built on the first batch: a difference above 1e-4 of the
output's scale stops the run with one error line. --plain runs them as built.
"""

from __future__ import annotations

import argparse

from zoo.cli import report_error, run_cli
from zoo.errors import ZooError
from zoo.eval.accuracy import evaluate_arrays, format_summary, write_report
from zoo.eval.cli_args import add_classifier_arguments
from zoo.eval.datasets import open_arrays
from zoo.eval.distributed import init_distributed
from zoo.eval.imagenet_models import classifier_models
from zoo.eval.predictors import FRAMEWORKS, make_predictor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_classifier_arguments(parser, "torch, keras", classifier_models())
    parser.add_argument("--framework", choices=FRAMEWORKS, default="torch")
    parser.add_argument("--compare", choices=FRAMEWORKS, help="also run this framework and list images where top-1 differs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, help="only the first N images of the val_map")
    parser.add_argument("--skip-missing", action="store_true", help="leave out val_map images that have no array")
    parser.add_argument("--report", help="JSON report path (default: accuracy-MODEL-FRAMEWORK.json)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.compare == args.framework:
        parser.error("--compare must name a framework other than --framework")
    import torch

    frameworks = [args.framework] + ([args.compare] if args.compare else [])
    use_cuda = "torch" in frameworks and torch.cuda.is_available() and (args.device or "cuda").startswith("cuda")
    ctx = init_distributed(use_cuda=use_cuda)
    device = args.device or (f"cuda:{ctx.local_rank}" if use_cuda else None)
    try:
        # The arrays first: a bad val_map or folder is reported before minutes of model loading.
        dataset = open_arrays(args.model, args.arrays, args.val_map, limit=args.limit, skip_missing=args.skip_missing)
        predictors = [make_predictor(args.model, fw, weights=args.weights, upstream=args.upstream, device=device,
                                     fast=not args.plain)
                      for fw in frameworks]
        info = {"framework": args.framework, "weights": args.weights, "upstream": args.upstream,
                "val_map": args.val_map}
        report = evaluate_arrays(args.model, dataset, predictors, batch_size=args.batch_size, ctx=ctx,
                                 progress=not args.quiet, info=info)
    except (ZooError, OSError, ValueError) as error:
        return report_error(error)
    finally:
        if ctx.world_size > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    if report is None:  # not rank 0
        return 0
    print(format_summary(report))
    path = write_report(args.report or f"accuracy-{args.model}-{args.framework}.json", report)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
