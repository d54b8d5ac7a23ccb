"""What TF-SAME padding costs: Conv2dSame against plain symmetric nn.Conv2d.

A ResNet-like stack of 3x3 convolutions (stride 2 then stride 1, four times,
after a stride-2 stem) is built three times with the same weights: from
``zoo.layers.Conv2dSame`` (stride-1 layers fold their padding into the conv,
stride-2 layers add one asymmetric ``F.pad``), from
``zoo.fold.Conv2dSameWideKernel`` (stride-2 layers take a 4x4 kernel with a
zero leading tap and symmetric padding, no copy, 16/9 the MACs: this
measures why zoo.fold uses that form for depthwise layers only), and from
``nn.Conv2d(padding=1)`` (same FLOPs as Conv2dSame, another function). They
are timed interleaved in one run; each TF-SAME form's ratio of medians
against the symmetric one is printed. Goal: <= 1.02.

    python benchmarks/padding.py [--batch 32] [--size 224] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

from zoo.fold import Conv2dSameWideKernel
from zoo.layers import Conv2dSame

# (in, out, stride) for each 3x3 convolution.
STACK = [(3, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1)]


def build(tf_same: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, stride in STACK:
        conv = Conv2dSame(cin, cout, 3, stride) if tf_same else nn.Conv2d(cin, cout, 3, stride, padding=1)
        layers += [conv, nn.ReLU(inplace=True)]
    return nn.Sequential(*layers).eval()


def gflop_per_image(size: int) -> float:
    total, n = 0, size
    for cin, cout, stride in STACK:
        n = -(-n // stride)
        total += n * n * cout * cin * 9
    return 2 * total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()

    torch.manual_seed(0)
    same, symmetric = build(True), build(False)
    symmetric.load_state_dict(same.state_dict())
    # Every strided layer in the wide form (zoo.fold.widen_same_kernels itself widens depthwise ones only).
    wide = nn.Sequential(*(Conv2dSameWideKernel.from_conv(m) if isinstance(m, Conv2dSame) else m for m in same))
    x = torch.randn(args.batch, 3, args.size, args.size)
    models = {"Conv2dSame": same, "Conv2dSameWideKernel": wide, "nn.Conv2d(padding=1)": symmetric}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for i in range(args.warmup + args.repeats):
            # Interleaved, so drift in the machine's speed hits both alike.
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(t) for name, t in times.items()}
    ratios = {name: medians[name] / medians["nn.Conv2d(padding=1)"] for name in ("Conv2dSame", "Conv2dSameWideKernel")}
    flops = gflop_per_image(args.size) * args.batch
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"batch {args.batch}, {args.size}x{args.size}, {flops:.1f} GFLOP per forward, median of {args.repeats}")
    for name, median in medians.items():
        print(f"  {name:22} {median * 1e3:8.1f} ms  {flops / median:6.1f} GFLOP/s")
    for name, ratio in ratios.items():
        print(f"time ratio {name} / nn.Conv2d(padding=1): {ratio:.3f} (goal <= 1.02)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "size": args.size, "median_s": medians, "ratios": ratios}, f, indent=2)


if __name__ == "__main__":
    main()
