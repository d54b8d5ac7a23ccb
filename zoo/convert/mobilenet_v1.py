"""MobileNet-v1 (TF-slim release ``mobilenet_v1_1.0_224.tgz``) -> canonical weights.

The name map is the model's one name table, :data:`zoo.specs.mobilenet_v1.TABLE`
(TF-slim variable names ``MobilenetV1/Conv2d_{i}_{depthwise,pointwise}/...`` to
the PyTorch ``state_dict`` of :class:`zoo.models.mobilenet_v1.MobileNetV1TfCompat`
and to the Keras weights). The facts about the release (member names, graph
nodes) live in :mod:`zoo.specs.mobilenet_v1` and are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..specs.common import torch_shapes
from ..specs.mobilenet_v1 import (  # noqa: F401  (upstream facts, re-exported)
    CHECKPOINT_PREFIX,
    FROZEN_MEMBER,
    INPUT_NODE,
    LOGITS_NODE,
    OUTPUT_NODE,
    RELEASE_MEMBERS,
    RELEASE_PREFIX,
    TABLE,
    TGZ_NAME,
)
from ..specs.mobilenet_v1 import BN_EPSILON, LAYERS, LOGITS_MODULE, TOTAL_STRIDE
from .graph_check import GraphExpectations, PoolExpect, batch_norm_expect, conv_expect, same_padding
from .tf_common import NameMap, convert_tf_release

# The checkpoint's non-model tensors (443 in all, 137 of them model weights):
# ExponentialMovingAverage copies, RMSProp slots, the step counter and loss
# averages. They are ignored on purpose (EMAs are used with --moving-averages).
_IGNORED_SUFFIXES = ("/ExponentialMovingAverage", "/RMSProp", "/RMSProp_1")
_IGNORED_NAMES = ("global_step",)
# Variable names TF-slim gives model weights; any other Const in a frozen graph
# is graph plumbing (shapes, dilation rates) and carries no weight.
_WEIGHT_LEAVES = ("weights", "depthwise_weights", "biases", "gamma", "beta", "moving_mean", "moving_variance")


def name_map() -> NameMap:
    """Canonical name -> (TF-slim variable name, layout rule), for all 137 model tensors (from the name table)."""
    return {spec.torch: (spec.upstream, spec.layout) for spec in TABLE}


def graph_expectations(name_map: NameMap) -> GraphExpectations:
    """The ops of the release's graphs (:mod:`zoo.convert.graph_check`): 28 SAME convolutions (27 layers,
    14 of them depthwise, strides as :data:`~zoo.specs.mobilenet_v1.SEPARABLE_BLOCKS`, and the 1x1
    logits), 27 batch norms (epsilon :data:`~zoo.specs.mobilenet_v1.BN_EPSILON`), and the head's
    global mean (``AvgPool_1a`` 7x7 VALID at 224, or ``global_pool``)."""
    convs = tuple(
        conv_expect(f"{layer.module}.conv", name_map, "DepthwiseConv2dNative" if layer.kind == "depthwise" else "Conv2D",
                    layer.stride, same_padding(layer.kernel_size, layer.stride))
        for layer in LAYERS
    ) + (conv_expect(LOGITS_MODULE, name_map, "Conv2D", 1, same_padding(1)),)
    batch_norms = tuple(batch_norm_expect(f"{layer.module}.bn", name_map, BN_EPSILON) for layer in LAYERS)
    pools = (PoolExpect("forward_head: mean over H, W", "global mean", total_stride=TOTAL_STRIDE),)
    return GraphExpectations(convs, batch_norms, pools)


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
    return convert_tf_release(
        "mobilenet_v1",
        source,
        out,
        name_map(),
        torch_shapes(TABLE),
        _is_ignored,
        frozen_member=FROZEN_MEMBER,
        checkpoint_member_prefix=CHECKPOINT_PREFIX,
        use_moving_averages=use_moving_averages,
    )
