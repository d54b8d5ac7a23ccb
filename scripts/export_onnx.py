#!/usr/bin/env python3
"""Export a zoo PyTorch port to ONNX with static shapes (opset >= 17).

    python scripts/export_onnx.py resnet50 --weights resnet50.safetensors --out resnet50.onnx
    python scripts/export_onnx.py flownet2_sd --weights flownet2_sd.safetensors --out flownet.onnx --size 384x512
    python scripts/export_onnx.py mobilenet_v1 --weights m.safetensors --out m.onnx --check

The input has the model's PyTorch layout and preprocessing convention
(``zoo.get_model_entry(name).input``), e.g. (batch, 3, H, W) for a classifier
and (batch, 3, 2, H, W) for FlowNet2-SD.
TF ``SAME`` padding is resolved for that size: the only ``Pad`` ops left are
those the padding rules need (asymmetric padding the exporter could not fold
into a Conv's own ``pads``). ``--check`` runs the file in ONNX Runtime and
compares it with the PyTorch port on a random input.
"""

from __future__ import annotations

import argparse
import sys

from zoo.cli import report_error, run_cli
from zoo.errors import ZooError
from zoo.export import DEFAULT_OPSET, MIN_OPSET, onnx_op_counts, onnx_opset
from zoo.registry import get_model_entry, list_models


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size takes HxW, e.g. 224x224, got {text!r}") from None
    return height, width


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=list_models())
    parser.add_argument("--weights", required=True, help="converted .safetensors file or weights tag")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    parser.add_argument("--size", type=_size, help="HxW (default: the model's input size)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, >= {MIN_OPSET} (default {DEFAULT_OPSET})")
    parser.add_argument("--check", action="store_true", help="compare ONNX Runtime with PyTorch on a random input")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    if args.opset < MIN_OPSET:
        parser.error(f"--opset must be >= {MIN_OPSET}")
    try:
        import onnxscript  # noqa: F401 - the exporter needs it
    except ImportError:
        print('error: ONNX export needs onnx and onnxscript: pip install -e ".[bench]"', file=sys.stderr)
        return 2
    from zoo.export import export_model

    size = args.size or get_model_entry(args.model).input.default_size
    try:
        out = export_model(args.model, args.weights, args.out, batch=args.batch, size=size, opset=args.opset)
    except ZooError as error:
        return report_error(error)
    counts = onnx_op_counts(out)
    print(f"wrote {out}: opset {onnx_opset(out)}, input {args.batch}x{size[0]}x{size[1]}, "
          f"{sum(counts.values())} nodes, {counts.get('Pad', 0)} Pad")
    if args.check:
        return _check(args.model, args.weights, str(out), args.batch, size)
    return 0


def _check(model: str, weights: str, path: str, batch: int, size: tuple[int, int]) -> int:
    """Max |diff| of ONNX Runtime against the PyTorch port; non-zero exit beyond the model's parity tolerance."""
    import torch

    from zoo.export import example_input

    try:
        import onnxruntime as ort
    except ImportError:
        print("error: --check needs onnxruntime", file=sys.stderr)
        return 2
    entry = get_model_entry(model)
    x = example_input(model, batch, size, seed=1)
    net = entry.builder("torch")(weights=weights).eval()
    with torch.inference_mode():
        expected = net(x).numpy()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    diff = entry.tolerance.max_diff(got, expected)
    tolerance = entry.tolerance.bound(expected)
    print(f"ONNX Runtime vs PyTorch: max |diff| {diff:.2e} (tolerance {tolerance:.1e}): {'ok' if diff <= tolerance else 'FAIL'}")
    return 0 if diff <= tolerance else 1


if __name__ == "__main__":
    run_cli(main)
