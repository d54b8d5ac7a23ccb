#!/usr/bin/env python3
"""Preprocess ImageNet validation JPEGs into MLPerf's preprocessed-cache layout (one .npy per image).

    python scripts/preprocess_imagenet.py mobilenet_v1 --images val/ --val-map val_map.txt --out cache/ --workers 8

writes cache/preprocessed/<dataset>/NHWC/<image>.npy and index.json, <dataset>
being the model's MLPerf dataset name (imagenet_mobilenet here). Images already
done are skipped, so an interrupted run can simply be started again.
"""

from __future__ import annotations

import argparse
import os

from zoo.cli import report_error, run_cli
from zoo.errors import ZooError
from zoo.eval.arrays import LAYOUTS
from zoo.eval.imagenet_models import mlperf_models
from zoo.eval.preprocess import preprocess_images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=mlperf_models())
    parser.add_argument("--images", required=True, help="folder of the validation JPEGs")
    parser.add_argument("--val-map", required=True, help="val_map.txt: '<image> <label>' per line")
    parser.add_argument("--out", required=True, help="cache root; arrays go to OUT/preprocessed/<dataset>/<layout>/")
    parser.add_argument("--layout", choices=LAYOUTS, default="NHWC", help="array layout (default NHWC, as MLPerf's TF runs)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--limit", type=int, help="only the first N images of the val_map")
    parser.add_argument("--strict", action="store_true", help="stop at the first missing or unreadable image")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        result = preprocess_images(args.model, args.images, args.val_map, args.out, layout=args.layout,
                                   workers=args.workers, strict=args.strict, limit=args.limit,
                                   progress=not args.quiet)
    except (ZooError, OSError, ValueError) as error:
        return report_error(error)
    print(f"{result.out_dir}: {result.written} written, {result.already_done} already done, "
          f"{len(result.failed)} missing or unreadable")
    return 0


if __name__ == "__main__":
    run_cli(main)
