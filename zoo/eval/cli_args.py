"""The command-line arguments the ImageNet scripts share (verify_accuracy.py, mlperf_run.py)."""

from __future__ import annotations

import argparse

from .imagenet import MLPERF_DATASETS


def add_classifier_arguments(parser: argparse.ArgumentParser, weights_for: str) -> None:
    """The model, its weights and upstream graph, the preprocessed arrays and their val_map, device, --plain.

    ``weights_for``: the frameworks or backends that read ``--weights``, for its help text.
    """
    parser.add_argument("model", choices=sorted(MLPERF_DATASETS))
    parser.add_argument("--weights", help=f"converted .safetensors file or weights tag ({weights_for})")
    parser.add_argument("--arrays", required=True,
                        help="the preprocess_imagenet.py --out folder, or the .npy folder itself")
    parser.add_argument("--val-map", required=True, help="val_map.txt: '<image> <label>' per line")
    parser.add_argument("--upstream",
                        help="upstream graph for tf-upstream: MobileNet release .tgz or frozen .pb, resnet50_v1.pb")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--plain", action="store_true",
                        help="run the ports as built, not in their fast form (batch norm folded, compiled)")
