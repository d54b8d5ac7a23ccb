"""ResNet-50 v1.5 (MLPerf ``resnet50_v1.pb``) -> canonical weights.

The one name map for this model. tf.layers numbers variables in creation
order: ``conv2d`` (stem), then per block the projection shortcut first (first
block of a stage only) and the three bottleneck convolutions; the batch norms
follow the same numbering. So ``conv2d_1``, ``conv2d_11``, ``conv2d_24`` and
``conv2d_43`` are the shortcuts.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..layouts import BATCHNORM_TORCH_TO_TF, Layout
from ..models.resnet50 import BLOCKS, ResNet50TfCompat
from .canonical import expected_shapes
from .tf_common import NameMap, convert_tf_release

_WEIGHT_LEAVES = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def _numbered(kind: str, index: int) -> str:
    return f"resnet_model/{kind}" + (f"_{index}" if index else "")


def _conv_bn(table: dict, conv: str, bn: str, index: int) -> None:
    table[f"{conv}.weight"] = (f"{_numbered('conv2d', index)}/kernel", Layout.CONV)
    for torch_name, tf_name in BATCHNORM_TORCH_TO_TF.items():
        table[f"{bn}.{torch_name}"] = (f"{_numbered('batch_normalization', index)}/{tf_name}", Layout.VECTOR)


def name_map() -> NameMap:
    """Canonical name -> (TF Const name, layout rule), for all 53 conv, 53 BN and the dense tensors."""
    table: dict[str, tuple[str, Layout]] = {}
    _conv_bn(table, "conv1", "bn1", 0)
    index = 1
    for stage, blocks in enumerate(BLOCKS, start=1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            if block == 0:
                _conv_bn(table, f"{prefix}.downsample.0", f"{prefix}.downsample.1", index)
                index += 1
            for conv in (1, 2, 3):
                _conv_bn(table, f"{prefix}.conv{conv}", f"{prefix}.bn{conv}", index)
                index += 1
    table["fc.weight"] = ("resnet_model/dense/kernel", Layout.DENSE)
    table["fc.bias"] = ("resnet_model/dense/bias", Layout.VECTOR)
    return table


def _is_ignored(name: str, kind: str) -> bool:
    # Any Const that is not a resnet_model weight is graph plumbing (paddings,
    # reduction axes, squeeze dims): it carries no weight.
    return not (name.startswith("resnet_model/") and name.rsplit("/", 1)[-1] in _WEIGHT_LEAVES)


def convert(source: str | os.PathLike, out: str | os.PathLike, use_moving_averages: bool = False) -> Path:
    """Convert ``resnet50_v1.pb`` (the frozen graph MLPerf ships) to ``out``."""
    if use_moving_averages:
        from ..errors import FormatError

        raise FormatError("resnet50_v1.pb is a frozen graph: it holds no moving averages")
    shapes = expected_shapes(ResNet50TfCompat)
    return convert_tf_release("resnet50", source, out, name_map(), shapes, _is_ignored)
