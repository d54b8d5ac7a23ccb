"""ResNet-50 v1.5 (MLPerf ``resnet50_v1.pb``) -> canonical weights.

The name map is the model's one name table, :data:`zoo.specs.resnet50.TABLE`
(tf.layers names ``resnet_model/conv2d_<i>/kernel``,
``resnet_model/batch_normalization_<i>/...`` numbered in creation order, the
projection shortcut first in a stage's first block, to torchvision-style
PyTorch names and the Keras weights). The facts about the frozen graph (its
file name, input and logits nodes) live in :mod:`zoo.specs.resnet50` and are
re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FormatError
from ..specs.common import torch_shapes
from ..specs.resnet50 import ARGMAX_NODE, INPUT_NODE, LOGITS_NODE, PB_NAME, SOFTMAX_NODE, TABLE  # noqa: F401
from ..specs.resnet50 import BN_EPSILON, LAYERS, POOL_KERNEL, POOL_MODULE, POOL_STRIDE, TOTAL_STRIDE
from .graph_check import GraphExpectations, PoolExpect, batch_norm_expect, conv_expect, fixed_padding
from .tf_common import NameMap, convert_tf_release

_WEIGHT_LEAVES = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def name_map() -> NameMap:
    """Canonical name -> (TF Const name, layout rule), for all 53 conv, 53 BN and the dense tensors (from the name table)."""
    return {spec.torch: (spec.upstream, spec.layout) for spec in TABLE}


def graph_expectations(name_map: NameMap) -> GraphExpectations:
    """The ops of ``resnet50_v1.pb`` (:mod:`zoo.convert.graph_check`): 53 convolutions (stride on the
    3x3, v1.5; (k-1)//2 on each side, which the graph writes as Pad + VALID where strided), 53 batch
    norms (epsilon :data:`~zoo.specs.resnet50.BN_EPSILON`), the SAME 3x3/2 max pool, and
    ``resnet_model/Mean`` over H, W."""
    convs = tuple(conv_expect(layer.conv, name_map, "Conv2D", layer.stride, fixed_padding(layer.padding))
                  for layer in LAYERS)
    batch_norms = tuple(batch_norm_expect(layer.bn, name_map, BN_EPSILON) for layer in LAYERS)
    pools = (
        PoolExpect(POOL_MODULE, "MaxPool", (POOL_KERNEL, POOL_KERNEL), (POOL_STRIDE, POOL_STRIDE), "SAME"),
        PoolExpect("forward: mean over H, W before fc", "global mean", total_stride=TOTAL_STRIDE),
    )
    return GraphExpectations(convs, batch_norms, pools)


def _is_ignored(name: str, kind: str) -> bool:
    # Any Const that is not a resnet_model weight is graph plumbing (paddings,
    # reduction axes, squeeze dims): it carries no weight.
    return not (name.startswith("resnet_model/") and name.rsplit("/", 1)[-1] in _WEIGHT_LEAVES)


def convert(source: str | os.PathLike, out: str | os.PathLike, use_moving_averages: bool = False) -> Path:
    """Convert ``resnet50_v1.pb`` (the frozen graph MLPerf ships) to ``out``."""
    if use_moving_averages:
        raise FormatError("resnet50_v1.pb is a frozen graph: it holds no moving averages")
    return convert_tf_release("resnet50", source, out, name_map(), torch_shapes(TABLE), _is_ignored)
