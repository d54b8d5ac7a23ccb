"""FlowNet2-SD in Keras (channels last; the input and output conventions are the registry entry's).

The same function as :mod:`zoo.models.flownet2_sd`, built from
:mod:`zoo.keras.layers` so that padding, transposed convolutions and the
final bilinear upsampling are PyTorch's. Layers are named after the PyTorch
modules through :func:`zoo.specs.keras_layer_name` (``conv0-0``,
``deconv5-0``, ``predict_flow6``); converted weights
load through the name table :data:`zoo.specs.flownet2_sd.TABLE`.
"""

from __future__ import annotations

import os

import keras
from keras import ops

from ..specs import flownet2_sd as spec
from ..specs import keras_layer_name as _name
from ..specs.flownet2_sd import DECODER, DIV_FLOW, ENCODER, LEAKY_SLOPE, RGB_MAX, SIZE_MULTIPLE
from .layers import TorchBilinearResize, TorchConv2D, TorchConv2DTranspose, TorchLeakyReLU
from .input_checks import InputCheckedModel
from .weights import kernel_initializer, load_canonical_into_keras
from ..errors import ArgumentError
from ..hub import resolve_weights


@keras.saving.register_keras_serializable(package="zoo")
class FlowNetInput(keras.layers.Layer):
    """(B, 2, H, W, 3) in [0, 255] -> (B, H, W, 6): subtract the per-sample, per-channel mean
    over both frames, divide by 255, stack frame 0's RGB then frame 1's."""

    def call(self, frames):
        # In stages (over W, then H, then the two frames), each a short float32
        # sum: one float32 mean over ~500k pixels drifts by ~1e-2 on TF (PyTorch's
        # pairwise sum does not), which would reach the flow as ~4e-3 px. Equal
        # counts per stage make the mean of means the mean.
        mean = ops.mean(frames, axis=3, keepdims=True)
        mean = ops.mean(mean, axis=2, keepdims=True)
        mean = ops.mean(mean, axis=1, keepdims=True)
        x = (frames - mean) / RGB_MAX
        return ops.concatenate([x[:, 0], x[:, 1]], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2], input_shape[3], 6)


def flownet2_sd(
    weights: str | os.PathLike | None = None,
    input_shape: tuple[int | None, int | None] = (None, None),
    cast_weights: bool = False,
) -> keras.Model:
    """NVIDIA's FlowNet2-SD as a Keras model (eval output only).

    Args:
        weights: ``None`` for random initialisation; the path of a converted
            ``.safetensors`` file; or a weights tag (``"nvidia"``), whose file
            :func:`zoo.hub.resolve_weights` finds in the cache, downloads or converts.
        input_shape: (H, W), multiples of 64, or None for any.
        cast_weights: cast a weights file of another dtype (float16, int8, ...)
            to float32 instead of refusing it.

    Returns an inference model, with or without weights (it has no batch norm
    or dropout: ``training`` changes nothing). Input: float32 (B, 2, H, W, 3),
    RGB in [0, 255]; a non-float32 array (uint8 frames, float64) raises
    :class:`zoo.errors.InputTypeError`, one in the PyTorch layout (B, 3, 2, H, W)
    or with H or W not a multiple of 64 :class:`zoo.errors.InputShapeError`
    (the PyTorch port's :func:`zoo.models.flownet2_sd.estimate_flow` shows how
    to run any size).
    """
    for size in input_shape:
        if size is not None and size % SIZE_MULTIPLE:
            raise ArgumentError(f"FlowNet2-SD needs H and W to be multiples of {SIZE_MULTIPLE}, got input_shape "
                                f"{tuple(input_shape)}")
    init = kernel_initializer(weights)
    frames = keras.Input((2, *input_shape, 3), name="frames")
    x = FlowNetInput(name="normalize")(frames)
    features = {}
    for name, _, out_channels, stride in ENCODER:
        x = TorchConv2D(out_channels, 3, stride, 1, name=_name(f"{name}.0"), kernel_initializer=init)(x)
        x = TorchLeakyReLU(LEAKY_SLOPE, name=_name(f"{name}.1"))(x)
        features[name] = x
    flow = TorchConv2D(2, 3, 1, 1, name="predict_flow6", kernel_initializer=init)(x)
    concat = x
    for level, (_, deconv_out, _, inter_out) in DECODER.items():
        upsampled = TorchConv2DTranspose(2, 4, 2, 1, name=f"upsampled_flow{level + 1}_to_{level}",
                                         kernel_initializer=init)(flow)
        deconv = TorchConv2DTranspose(deconv_out, 4, 2, 1, name=_name(f"deconv{level}.0"),
                                      kernel_initializer=init)(concat)
        deconv = TorchLeakyReLU(LEAKY_SLOPE, name=_name(f"deconv{level}.1"))(deconv)
        concat = keras.layers.Concatenate(name=f"concat{level}")([features[f"conv{level}_1"], deconv, upsampled])
        inter = TorchConv2D(inter_out, 3, 1, 1, name=_name(f"inter_conv{level}.0"), kernel_initializer=init)(concat)
        flow = TorchConv2D(2, 3, 1, 1, name=f"predict_flow{level}", kernel_initializer=init)(inter)
    flow = keras.layers.Rescaling(DIV_FLOW, name="div_flow")(flow)
    outputs = TorchBilinearResize(scale_factor=4, name="upsample1")(flow)
    # The same words as the PyTorch port, which owns the any-size helper.
    model = InputCheckedModel(frames, outputs, name="flownet2_sd", spatial_multiple=SIZE_MULTIPLE,
                              size_hint=f"resize the frames to multiples of {SIZE_MULTIPLE} and rescale the flow "
                              "back, as zoo.models.flownet2_sd.estimate_flow does for the PyTorch port")
    if weights is not None:
        load_canonical_into_keras(model, resolve_weights(weights, "flownet2_sd"), "flownet2_sd", spec.TABLE,
                                  cast=cast_weights)
    return model
