#!/usr/bin/env python3
"""Convert an upstream release to zoo's canonical .safetensors.

    python scripts/convert.py mobilenet_v1 --source mobilenet_v1_1.0_224.tgz --out m.safetensors
    python scripts/convert.py mobilenet_v1 --names   # the name table: upstream, PyTorch, Keras, shapes
"""

from __future__ import annotations

import argparse

from zoo.cli import report_error, run_cli
from zoo.convert.canonical import check_output_path
from zoo.errors import ZooError
from zoo.registry import get_model_entry, list_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=list_models())
    parser.add_argument("--source", help="the upstream file: release .tgz, frozen .pb, checkpoint prefix, .pth.tar or .caffemodel.h5")
    parser.add_argument("--out", help="the .safetensors file to write")
    parser.add_argument(
        "--names",
        action="store_true",
        help="print the model's name table instead of converting: one tensor a line, tab-separated "
        "upstream name, shape, PyTorch key, shape, Keras weight, shape (FlowNet2-SD: and its Caffe blob)",
    )
    parser.add_argument(
        "--moving-averages",
        action="store_true",
        help="from a checkpoint, use the ExponentialMovingAverage copies instead of the raw variables",
    )
    args = parser.parse_args(argv)
    if args.names:
        print_names(args.model)
        return 0
    if args.source is None or args.out is None:
        parser.error("--source and --out are required (unless --names)")
    convert = get_model_entry(args.model).load("converter")
    try:
        check_output_path(args.out)
        out = convert(args.source, args.out, use_moving_averages=args.moving_averages)
    except ZooError as error:
        return report_error(error)
    print(f"wrote {out}")
    return 0


def print_names(model: str) -> None:
    """Print ``model``'s name table (zoo.specs), one tensor a line."""
    import importlib

    from zoo.specs.common import name_lines

    spec = importlib.import_module(f"zoo.specs.{model}")
    blobs = getattr(spec, "CAFFE_BLOBS", None)
    extra = None if blobs is None else {key: f"data/{layer}/{blob}" for key, (layer, blob) in blobs.items()}
    for line in name_lines(spec.TABLE, extra, "caffe_blob"):
        print(line)


if __name__ == "__main__":
    run_cli(main)
