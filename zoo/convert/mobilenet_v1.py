"""MobileNet-v1 (TF-slim release ``mobilenet_v1_1.0_224.tgz``) -> canonical weights.

The one name map for this model: TF-slim variable names
(``MobilenetV1/Conv2d_{i}_{depthwise,pointwise}/...``) to the PyTorch
``state_dict`` of :class:`zoo.models.mobilenet_v1.MobileNetV1TfCompat`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..layouts import BATCHNORM_TORCH_TO_TF, Layout
from ..models.mobilenet_v1 import SEPARABLE_BLOCKS, MobileNetV1TfCompat
from .canonical import expected_shapes
from .tf_common import NameMap, convert_tf_release

RELEASE_PREFIX = "mobilenet_v1_1.0_224"
FROZEN_MEMBER = f"{RELEASE_PREFIX}_frozen.pb"
CHECKPOINT_PREFIX = f"{RELEASE_PREFIX}.ckpt"
# The checkpoint's non-model tensors (443 in all, 137 of them model weights):
# ExponentialMovingAverage copies, RMSProp slots, the step counter and loss
# averages. They are ignored on purpose (EMAs are used with --moving-averages).
_IGNORED_SUFFIXES = ("/ExponentialMovingAverage", "/RMSProp", "/RMSProp_1")
_IGNORED_NAMES = ("global_step",)
# Variable names TF-slim gives model weights; any other Const in a frozen graph
# is graph plumbing (shapes, dilation rates) and carries no weight.
_WEIGHT_LEAVES = ("weights", "depthwise_weights", "biases", "gamma", "beta", "moving_mean", "moving_variance")


def _conv_bn(table: dict, prefix: str, scope: str, kernel: str, layout: Layout) -> None:
    table[f"{prefix}.conv.weight"] = (f"{scope}/{kernel}", layout)
    for torch_name, tf_name in BATCHNORM_TORCH_TO_TF.items():
        table[f"{prefix}.bn.{torch_name}"] = (f"{scope}/BatchNorm/{tf_name}", Layout.VECTOR)


def name_map() -> NameMap:
    """Canonical name -> (TF-slim variable name, layout rule), for all 137 model tensors."""
    table: dict[str, tuple[str, Layout]] = {}
    _conv_bn(table, "features.conv2d_0", "MobilenetV1/Conv2d_0", "weights", Layout.CONV)
    for i in range(1, len(SEPARABLE_BLOCKS) + 1):
        _conv_bn(table, f"features.conv2d_{i}_depthwise", f"MobilenetV1/Conv2d_{i}_depthwise", "depthwise_weights", Layout.DEPTHWISE)
        _conv_bn(table, f"features.conv2d_{i}_pointwise", f"MobilenetV1/Conv2d_{i}_pointwise", "weights", Layout.CONV)
    table["logits.weight"] = ("MobilenetV1/Logits/Conv2d_1c_1x1/weights", Layout.CONV)
    table["logits.bias"] = ("MobilenetV1/Logits/Conv2d_1c_1x1/biases", Layout.VECTOR)
    return table


def _is_ignored(name: str, kind: str) -> bool:
    if kind == "checkpoint":
        return name.endswith(_IGNORED_SUFFIXES) or name in _IGNORED_NAMES
    return not (name.startswith("MobilenetV1/") and name.rsplit("/", 1)[-1] in _WEIGHT_LEAVES)


def convert(source: str | os.PathLike, out: str | os.PathLike, use_moving_averages: bool = False) -> Path:
    """Convert the release (the ``.tgz``, its frozen ``.pb``, or the checkpoint prefix) to ``out``.

    From the ``.tgz`` or ``.pb`` the frozen graph's constants are used (what
    MLPerf ran); from a checkpoint the raw variables, or with
    ``use_moving_averages`` their ExponentialMovingAverage copies.
    """
    shapes = expected_shapes(MobileNetV1TfCompat)
    return convert_tf_release(
        "mobilenet_v1",
        source,
        out,
        name_map(),
        shapes,
        _is_ignored,
        frozen_member=FROZEN_MEMBER,
        checkpoint_member_prefix=CHECKPOINT_PREFIX,
        use_moving_averages=use_moving_averages,
    )
