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
        "upstream name, shape, PyTorch key, shape, Keras weight, shape (and its name in another upstream "
        "format, where the model has one)",
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
    # Only when asked: a converter that reads no checkpoints need not take the option.
    options = {"use_moving_averages": True} if args.moving_averages else {}
    try:
        check_output_path(args.out)
        out = convert(args.source, args.out, **options)
    except ZooError as error:
        return report_error(error)
    print(f"wrote {out}")
    return 0


def print_names(model: str) -> None:
    """Print ``model``'s name table (zoo.specs), one tensor a line, with its alternate names where it has them."""
    from zoo.specs.common import name_lines

    entry = get_model_entry(model)
    alternate = entry.load("alternate_names") if entry.alternate_names is not None else None
    for line in name_lines(entry.load("name_table"), alternate, "alternate_name"):
        print(line)


if __name__ == "__main__":
    run_cli(main)
