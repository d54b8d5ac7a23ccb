#!/usr/bin/env python3
"""Convert an upstream release to zoo's canonical .safetensors.

    python scripts/convert.py mobilenet_v1 --source mobilenet_v1_1.0_224.tgz --out m.safetensors
"""

from __future__ import annotations

import argparse
import sys

from zoo.errors import ZooError
from zoo.registry import get_model_entry, list_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=list_models())
    parser.add_argument("--source", required=True, help="the upstream file: release .tgz, frozen .pb, checkpoint prefix, .pth.tar or .caffemodel.h5")
    parser.add_argument("--out", required=True, help="the .safetensors file to write")
    parser.add_argument(
        "--moving-averages",
        action="store_true",
        help="from a checkpoint, use the ExponentialMovingAverage copies instead of the raw variables",
    )
    args = parser.parse_args(argv)
    convert = get_model_entry(args.model).load("converter")
    try:
        out = convert(args.source, args.out, use_moving_averages=args.moving_averages)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
