"""MobileNet-v1 1.0/224 (MLPerf, TF-slim) in Keras, NHWC.

The same function as :mod:`zoo.models.mobilenet_v1`; the facts about the
model are in :mod:`zoo.specs.mobilenet_v1` and its registry entry. Here TF's
own ``"same"`` padding is the upstream semantics. Layers are named after the
PyTorch modules (:func:`zoo.specs.keras_layer_name`: ``features.conv2d_0.conv``
is layer ``features-conv2d_0-conv``) and each converted tensor loads through
the name table :data:`zoo.specs.mobilenet_v1.TABLE`.
"""

from __future__ import annotations

import os

import keras

from ..specs import keras_layer_name as _name
from ..specs import mobilenet_v1 as spec
from ..specs.mobilenet_v1 import BN_EPSILON, SEPARABLE_BLOCKS, STEM_CHANNELS
from .input_checks import InputCheckedModel
from .weights import kernel_initializer, load_canonical_into_keras
from ..errors import ArgumentError
from ..hub import resolve_weights


def _conv_bn_relu6(x, prefix: str, filters: int | None, kernel: int, stride: int, init: str):
    conv = _name(f"{prefix}.conv")
    if filters is None:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=conv,
                                         depthwise_initializer=init)(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=conv,
                                kernel_initializer=init)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=_name(f"{prefix}.bn"))(x)
    return keras.layers.ReLU(max_value=6.0, name=_name(f"{prefix}.act"))(x)


def mobilenet_v1_tf_compat(
    weights: str | os.PathLike | None = None,
    num_classes: int = 1001,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    cast_weights: bool = False,
) -> keras.Model:
    """MLPerf's MobileNet-v1 1.0/224 as a Keras model.

    Args:
        weights: ``None`` for random initialisation; the path of a converted
            ``.safetensors`` file; or a weights tag (``"mlperf"``), whose file
            :func:`zoo.hub.resolve_weights` finds in the cache, downloads or converts.
        num_classes: 1001 for the upstream classifier (class 0 = background).
        input_shape: NHWC without the batch; any size >= 32 (global average pool).
        cast_weights: cast a weights file of another dtype (float16, int8, ...)
            to float32 instead of refusing it.

    Returns a model that runs in inference mode unless called with
    ``training=True`` (Keras' training flag is per call: ``model(x)``,
    ``model.predict(x)`` and ``model(x, training=False)`` all use the batch-norm
    moving statistics), with or without weights.
    Input: float32 NHWC in [-1, 1]; a non-float32 array (uint8 image,
    float64) raises :class:`zoo.errors.InputTypeError`, an NCHW-shaped one
    :class:`zoo.errors.InputShapeError`.
    """
    if num_classes < 1:
        raise ArgumentError(f"num_classes must be >= 1, got {num_classes}")
    init = kernel_initializer(weights)
    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn_relu6(inputs, "features.conv2d_0", STEM_CHANNELS, 3, 2, init)
    for index, (filters, stride) in enumerate(SEPARABLE_BLOCKS, start=1):
        x = _conv_bn_relu6(x, f"features.conv2d_{index}_depthwise", None, 3, stride, init)
        x = _conv_bn_relu6(x, f"features.conv2d_{index}_pointwise", filters, 1, 1, init)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = keras.layers.Conv2D(num_classes, 1, name="logits", kernel_initializer=init)(x)
    outputs = keras.layers.Flatten(name="squeeze")(x)
    model = InputCheckedModel(inputs, outputs, name="mobilenet_v1_tf_compat")
    if weights is not None:
        load_canonical_into_keras(model, resolve_weights(weights, "mobilenet_v1"), "mobilenet_v1", spec.TABLE,
                                  cast=cast_weights)
    return model
