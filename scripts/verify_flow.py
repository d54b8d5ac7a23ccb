#!/usr/bin/env python3
"""Average end-point error of an optical-flow model on Sintel- or FlyingChairs-style folders, with a per-pair table.

    python scripts/verify_flow.py --weights flownet2_sd.safetensors --data sintel/ --png-dir flow_png/

Sintel frames (436x1024) are centre-cropped to 384x1024, as NVIDIA's MpiSintel
loader (StaticCenterCrop) does. The EPE is reported twice: over all pixels
(epe_all_pixels, what NVIDIA's losses.EPE computes) and with the pixels
Sintel's invalid.png marks left out (epe_valid_pixels).

The model runs in its fast form by default (torch: zoo.fast_inference_model,
channels_last and compiled; keras: zoo.keras.fast), checked against the model
as built on the first pair: a difference above 1e-4 of the output's scale stops
the run with one error line. --plain runs the model as built.
"""

from __future__ import annotations

import argparse

from zoo.cli import report_error, run_cli
from zoo.errors import ZooError
from zoo.eval.accuracy import write_report
from zoo.eval.flow_eval import (
    FLOW_FRAMEWORKS,
    evaluate_flow,
    find_pairs,
    flow_entry,
    flow_models,
    format_table,
    make_flow_predictor,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=flow_models(),
                        help="the flow model (default: the only one registered)")
    parser.add_argument("--weights", required=True, help="converted .safetensors file or weights tag")
    parser.add_argument("--data", required=True, help="folder of pairs (searched recursively)")
    parser.add_argument("--framework", choices=FLOW_FRAMEWORKS, default="torch")
    parser.add_argument("--limit", type=int, help="only the first N pairs (sorted by name)")
    parser.add_argument("--png-dir", help="write colour-coded predicted and true flow PNGs here")
    parser.add_argument("--report", help="also write the rows and the average as JSON")
    parser.add_argument("--plain", action="store_true", help="run the model as built, not in its fast (compiled) form")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        model = flow_entry(args.model).name
        pairs = find_pairs(args.data)[: args.limit]
        predict = make_flow_predictor(model, args.framework, args.weights, fast=not args.plain)
        result = evaluate_flow(pairs, predict, png_dir=args.png_dir, progress=not args.quiet)
    except (ZooError, OSError, ValueError) as error:
        return report_error(error)
    check = predict.fast_check
    result = {"model": model, "framework": args.framework, "weights": args.weights, "data": args.data,
              "fast_check": None if check is None else check.as_dict(), **result}
    print(format_table(result))
    if check is not None:
        print(check.line())
    if args.report:
        print(f"report: {write_report(args.report, result)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
