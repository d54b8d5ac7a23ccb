"""MobileNet-v1 1.0/224 as MLPerf ships it: architecture, upstream facts, name table.

Upstream: TF-slim ``nets/mobilenet_v1.py``, release ``mobilenet_v1_2018_08_02``
(``mobilenet_v1_1.0_224.tgz``). Read by :mod:`zoo.models.mobilenet_v1`,
:mod:`zoo.keras.mobilenet_v1`, :mod:`zoo.convert.mobilenet_v1` and
:mod:`zoo.standins.mobilenet_v1`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..layouts import Layout
from .common import NameTable, TableBuilder

# --- architecture ----------------------------------------------------------------------
# TF-slim MOBILENETV1_CONV_DEFS after Conv2d_0 (3x3 stride 2, 32 channels):
# (pointwise output channels, depthwise stride) of separable blocks 1..13.
SEPARABLE_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
STEM_CHANNELS = 32
STEM_STRIDE = 2
KERNEL_SIZE = 3  # Conv2d_0 and every depthwise convolution; pointwise ones are 1x1
# mobilenet_v1_arg_scope: batch_norm epsilon 0.001 (FusedBatchNorm attr in the
# eval graph: 0.0010000000475).
BN_EPSILON = 0.001
NUM_CLASSES = 1001  # ImageNet + background class 0
TOTAL_STRIDE = math.prod((STEM_STRIDE, *(stride for _, stride in SEPARABLE_BLOCKS)))  # 32
# The head: a global mean (AvgPool_1a, 7x7 VALID at 224x224; or global_pool), then
# Logits/Conv2d_1c_1x1, a 1x1 convolution with biases.
LOGITS_MODULE = "logits"

# --- the upstream release ----------------------------------------------------------------
RELEASE_PREFIX = "mobilenet_v1_1.0_224"
TGZ_NAME = f"{RELEASE_PREFIX}.tgz"
FROZEN_MEMBER = f"{RELEASE_PREFIX}_frozen.pb"
EVAL_PBTXT_MEMBER = f"{RELEASE_PREFIX}_eval.pbtxt"
INFO_MEMBER = f"{RELEASE_PREFIX}_info.txt"
CHECKPOINT_PREFIX = f"{RELEASE_PREFIX}.ckpt"
RELEASE_MEMBERS: tuple[str, ...] = (
    f"{CHECKPOINT_PREFIX}.data-00000-of-00001",
    f"{CHECKPOINT_PREFIX}.index",
    f"{CHECKPOINT_PREFIX}.meta",
    f"{RELEASE_PREFIX}.tflite",
    EVAL_PBTXT_MEMBER,
    FROZEN_MEMBER,
    INFO_MEMBER,
)
INPUT_NODE = "input"
LOGITS_NODE = "MobilenetV1/Logits/SpatialSqueeze"
OUTPUT_NODE = "MobilenetV1/Predictions/Reshape_1"
SCOPE = "MobilenetV1"  # variable scope of every model variable
LOGITS_SCOPE = f"{SCOPE}/Logits/Conv2d_1c_1x1"


@dataclass(frozen=True)
class ConvLayer:
    """One conv + batch norm + ReLU6 layer (TF-slim ``conv2d`` / ``separable_conv2d`` with batch norm)."""

    scope: str  # upstream scope under MobilenetV1/, e.g. Conv2d_1_depthwise
    module: str  # PyTorch ConvBnAct module, with submodules conv and bn (Keras: keras_layer_name of each)
    kind: str  # "conv" or "depthwise" (channel multiplier 1)
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int

    @property
    def upstream_kernel(self) -> str:
        leaf = "depthwise_weights" if self.kind == "depthwise" else "weights"
        return f"{SCOPE}/{self.scope}/{leaf}"

    @property
    def upstream_batch_norm(self) -> str:
        return f"{SCOPE}/{self.scope}/BatchNorm"


def _layers() -> tuple[ConvLayer, ...]:
    layers = [ConvLayer("Conv2d_0", "features.conv2d_0", "conv", 3, STEM_CHANNELS, KERNEL_SIZE, STEM_STRIDE)]
    channels = STEM_CHANNELS
    for i, (out_channels, stride) in enumerate(SEPARABLE_BLOCKS, start=1):
        layers.append(ConvLayer(f"Conv2d_{i}_depthwise", f"features.conv2d_{i}_depthwise", "depthwise",
                                channels, channels, KERNEL_SIZE, stride))
        layers.append(ConvLayer(f"Conv2d_{i}_pointwise", f"features.conv2d_{i}_pointwise", "conv",
                                channels, out_channels, 1, 1))
        channels = out_channels
    return tuple(layers)


LAYERS = _layers()  # the 27 conv layers, in graph order
NUM_FEATURES = LAYERS[-1].out_channels


def _table() -> NameTable:
    table = TableBuilder("tf")
    for layer in LAYERS:
        k = layer.kernel_size
        if layer.kind == "depthwise":
            table.conv(f"{layer.module}.conv", (layer.out_channels, 1, k, k),
                       layer.upstream_kernel, layout=Layout.DEPTHWISE)
        else:
            table.conv(f"{layer.module}.conv", (layer.out_channels, layer.in_channels, k, k),
                       layer.upstream_kernel)
        table.batch_norm(f"{layer.module}.bn", layer.upstream_batch_norm, layer.out_channels)
    table.conv(LOGITS_MODULE, (NUM_CLASSES, NUM_FEATURES, 1, 1), f"{LOGITS_SCOPE}/weights",
               bias=f"{LOGITS_SCOPE}/biases")
    return table.build()


TABLE: NameTable = _table()  # the 137 model variables, in eval-graph order
