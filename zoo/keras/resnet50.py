"""ResNet-50 v1.5 (MLPerf ``resnet50_v1.pb``) in Keras, NHWC.

The same function as :mod:`zoo.models.resnet50`; the facts about the model
are in :mod:`zoo.specs.resnet50` and its registry entry. Convolutions pad
symmetrically by (k-1)//2 (:class:`zoo.keras.layers.TorchConv2D`: Keras
``"same"`` at stride 1, where it is symmetric for odd kernels; an explicit pad
and VALID at stride 2, as TF official's ``fixed_padding`` does); the max pool
is TF ``SAME``. Layers are named after the PyTorch modules
(:func:`zoo.specs.keras_layer_name`: ``layer1.0.conv1`` is layer ``layer1-0-conv1``); converted
weights load through the name table :data:`zoo.specs.resnet50.TABLE`.
"""

from __future__ import annotations

import os

import keras

from ..specs import keras_layer_name as _name
from ..specs import resnet50 as spec
from ..specs.resnet50 import BLOCKS, BN_DECAY, BN_EPSILON, EXPANSION, FILTERS, STRIDES
from .layers import TorchConv2D
from .input_checks import InputCheckedModel
from .weights import kernel_initializer, load_canonical_into_keras
from ..errors import ArgumentError
from ..hub import resolve_weights


def _conv_bn(x, conv: str, bn: str, filters: int, kernel: int, stride: int, init: str):
    x = TorchConv2D(filters, kernel, stride, padding=(kernel - 1) // 2, use_bias=False, name=_name(conv),
                    kernel_initializer=init)(x)
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_DECAY, name=_name(bn))(x)


def _bottleneck(x, prefix: str, filters: int, stride: int, projection: bool, init: str):
    shortcut = x
    if projection:
        shortcut = _conv_bn(x, f"{prefix}.downsample.0", f"{prefix}.downsample.1", filters * EXPANSION, 1, stride,
                            init)
    x = _conv_bn(x, f"{prefix}.conv1", f"{prefix}.bn1", filters, 1, 1, init)
    x = keras.layers.ReLU(name=_name(f"{prefix}.relu1"))(x)
    x = _conv_bn(x, f"{prefix}.conv2", f"{prefix}.bn2", filters, 3, stride, init)
    x = keras.layers.ReLU(name=_name(f"{prefix}.relu2"))(x)
    x = _conv_bn(x, f"{prefix}.conv3", f"{prefix}.bn3", filters * EXPANSION, 1, 1, init)
    x = keras.layers.Add(name=_name(f"{prefix}.add"))([x, shortcut])
    return keras.layers.ReLU(name=_name(f"{prefix}.relu3"))(x)


def resnet50_tf_compat(
    weights: str | os.PathLike | None = None,
    num_classes: int = 1001,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    cast_weights: bool = False,
) -> keras.Model:
    """MLPerf's ResNet-50 v1.5 as a Keras model (NHWC, logits over ``num_classes``).

    Args:
        weights: ``None`` for random initialisation; the path of a converted
            ``.safetensors`` file; or a weights tag (``"mlperf"``), whose file
            :func:`zoo.hub.resolve_weights` finds in the cache, downloads or converts.
        num_classes: 1001 for the upstream classifier (class 0 = background).
        input_shape: NHWC without the batch; any size >= 32.
        cast_weights: cast a weights file of another dtype (float16, int8, ...)
            to float32 instead of refusing it.

    Returns a model that runs in inference mode unless called with
    ``training=True`` (Keras' training flag is per call: ``model(x)``,
    ``model.predict(x)`` and ``model(x, training=False)`` all use the batch-norm
    moving statistics), with or without weights.
    Input: float32 NHWC, MLPerf ``pre_process_vgg``; a non-float32 array
    (uint8 image, float64) raises :class:`zoo.errors.InputTypeError`, an
    NCHW-shaped one :class:`zoo.errors.InputShapeError`.
    """
    if num_classes < 1:
        raise ArgumentError(f"num_classes must be >= 1, got {num_classes}")
    init = kernel_initializer(weights)
    inputs = keras.Input(input_shape, name="input_tensor")
    x = keras.layers.ReLU(name="relu")(_conv_bn(inputs, "conv1", "bn1", 64, 7, 2, init))
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="maxpool")(x)
    for stage, (blocks, filters, stride) in enumerate(zip(BLOCKS, FILTERS, STRIDES), start=1):
        for block in range(blocks):
            x = _bottleneck(x, f"layer{stage}.{block}", filters, stride if block == 0 else 1, block == 0, init)
    x = keras.layers.GlobalAveragePooling2D(name="mean")(x)
    outputs = keras.layers.Dense(num_classes, name="fc", kernel_initializer=init)(x)
    model = InputCheckedModel(inputs, outputs, name="resnet50_tf_compat")
    if weights is not None:
        load_canonical_into_keras(model, resolve_weights(weights, "resnet50"), "resnet50", spec.TABLE,
                                  cast=cast_weights)
    return model
