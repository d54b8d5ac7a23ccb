"""The command-line arguments the ImageNet scripts share (verify_accuracy.py, mlperf_run.py)."""

from __future__ import annotations

import argparse
from typing import Sequence


def add_classifier_arguments(parser: argparse.ArgumentParser, weights_for: str, models: Sequence[str]) -> None:
    """The model (one of ``models``), its weights and upstream graph, the arrays and their val_map, device, --plain.

    ``weights_for``: the frameworks or backends that read ``--weights``, for its help text.
    """
    parser.add_argument("model", choices=sorted(models))
    parser.add_argument("--weights", help=f"converted .safetensors file or weights tag ({weights_for})")
    parser.add_argument("--arrays", required=True,
                        help="the preprocess_imagenet.py --out folder, or the .npy folder itself")
    parser.add_argument("--val-map", required=True, help="val_map.txt: '<image> <label>' per line")
    parser.add_argument("--upstream", help="the upstream TensorFlow graph for tf-upstream: the release file "
                        "(a frozen .pb, or the release archive holding it)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--plain", action="store_true",
                        help="run the ports as built, not in their fast form (batch norm folded, compiled)")
