"""ResNet-50 v1.5 as MLPerf ships it (``resnet50_v1.pb``): architecture, upstream facts, name table.

Upstream: TF official models r1 ``official/resnet`` (resnet_size 50,
resnet_version 1), exported 20181001 and frozen. tf.layers numbers variables
in creation order: ``conv2d`` (stem), then per block the projection shortcut
first (first block of a stage only) and the three bottleneck convolutions;
the batch norms follow the same numbering. So ``conv2d_1``, ``conv2d_11``,
``conv2d_24`` and ``conv2d_43`` are the shortcuts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..layouts import Layout
from .common import NameTable, TableBuilder

# --- architecture ----------------------------------------------------------------------
# imagenet_main._get_block_sizes(50) and ImagenetModel: num_filters 64 doubled per
# stage, block_strides [1, 2, 2, 2]; bottleneck blocks end with 4 * filters.
BLOCKS = (3, 4, 6, 3)
FILTERS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
EXPANSION = 4
STEM_CHANNELS = 64
STEM_KERNEL = 7
STEM_STRIDE = 2
# resnet_model.py: tf.layers.max_pooling2d(pool_size=3, strides=2, padding='SAME') after the stem.
POOL_MODULE = "maxpool"
POOL_KERNEL = 3
POOL_STRIDE = 2
# What every FusedBatchNorm node of resnet50_v1.pb stores and computes with
# (checked at conversion, zoo.convert.graph_check). resnet_model.py says
# _BATCH_NORM_EPSILON = 1e-5; TF 1.11's tf.nn.fused_batch_norm raised it to its
# floor 1.001e-5 when the graph was built (zoo.layers.tf1_fused_bn_epsilon).
BN_EPSILON = 1.001e-5
BN_DECAY = 0.997
NUM_CLASSES = 1001  # imagenet_main._NUM_CLASSES: ImageNet + background class 0
TOTAL_STRIDE = math.prod((STEM_STRIDE, POOL_STRIDE, *STRIDES))  # 32
MIN_IMAGE_SIZE = TOTAL_STRIDE
NUM_FEATURES = FILTERS[-1] * EXPANSION

# --- the upstream file -------------------------------------------------------------------
PB_NAME = "resnet50_v1.pb"
INPUT_NODE = "input_tensor"  # official/utils/export: tf.placeholder(..., name='input_tensor')
LOGITS_NODE = "resnet_model/final_dense"  # resnet_model: tf.identity(inputs, 'final_dense')
SOFTMAX_NODE = "softmax_tensor"  # resnet_run_loop: tf.nn.softmax(logits, name='softmax_tensor')
ARGMAX_NODE = "ArgMax"  # resnet_run_loop: tf.argmax(logits, axis=1), int64
SCOPE = "resnet_model"
DENSE_SCOPE = f"{SCOPE}/dense"


@dataclass(frozen=True)
class ConvLayer:
    """One convolution + batch norm, in graph (tf.layers numbering) order."""

    index: int  # conv2d_<index> / batch_normalization_<index> (no suffix for 0)
    conv: str  # PyTorch module of the convolution (Keras layer: specs.common.keras_layer_name)
    bn: str  # ... and of its batch norm
    kernel_size: int
    stride: int
    in_channels: int
    out_channels: int
    block: int  # 0-based bottleneck block, -1 for the stem

    @property
    def padding(self) -> int:
        """Zero padding on each side: conv2d_fixed_padding pads (k-1)//2 before and the rest after
        (symmetric for these odd kernels) when strided, and SAME (also symmetric) at stride 1."""
        return (self.kernel_size - 1) // 2

    @property
    def _suffix(self) -> str:
        return f"_{self.index}" if self.index else ""

    @property
    def upstream_kernel(self) -> str:
        return f"{SCOPE}/conv2d{self._suffix}/kernel"

    @property
    def upstream_batch_norm(self) -> str:
        return f"{SCOPE}/batch_normalization{self._suffix}"


def _layers() -> tuple[ConvLayer, ...]:
    layers = [ConvLayer(0, "conv1", "bn1", STEM_KERNEL, STEM_STRIDE, 3, STEM_CHANNELS, -1)]
    channels, block = STEM_CHANNELS, 0
    for stage, (blocks, filters, stride) in enumerate(zip(BLOCKS, FILTERS, STRIDES), start=1):
        for b in range(blocks):
            prefix, s, out = f"layer{stage}.{b}", stride if b == 0 else 1, filters * EXPANSION
            if b == 0:  # _bottleneck_block_v1 calls the projection shortcut first
                layers.append(ConvLayer(len(layers), f"{prefix}.downsample.0", f"{prefix}.downsample.1",
                                        1, s, channels, out, block))
            for i, (k, s_i, cin, cout) in enumerate(((1, 1, channels, filters), (3, s, filters, filters),
                                                     (1, 1, filters, out)), start=1):
                layers.append(ConvLayer(len(layers), f"{prefix}.conv{i}", f"{prefix}.bn{i}", k, s_i, cin, cout, block))
            channels, block = out, block + 1
    return tuple(layers)


LAYERS = _layers()  # the 53 conv + batch norm layers, conv2d ... conv2d_52


def _table() -> NameTable:
    table = TableBuilder("tf")
    for layer in LAYERS:
        k = layer.kernel_size
        table.conv(layer.conv, (layer.out_channels, layer.in_channels, k, k), layer.upstream_kernel)
        table.batch_norm(layer.bn, layer.upstream_batch_norm, layer.out_channels)
    table.conv("fc", (NUM_CLASSES, NUM_FEATURES), f"{DENSE_SCOPE}/kernel", bias=f"{DENSE_SCOPE}/bias",
               layout=Layout.DENSE)
    return table.build()


TABLE: NameTable = _table()  # the 267 weight Consts of the frozen graph, in graph order
