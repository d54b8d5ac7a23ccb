"""FlowNet2-SD in Keras: input (B, 2, H, W, 3) RGB in [0, 255], output (B, H, W, 2) flow in pixels.

The same function as :mod:`zoo.models.flownet2_sd`, built from
:mod:`zoo.keras.layers` so that padding, transposed convolutions and the
final bilinear upsampling are PyTorch's. Layers are named after the PyTorch
modules (``conv0.0``, ``deconv5.0``, ``predict_flow6``); converted weights
load through the name table :data:`zoo.specs.flownet2_sd.TABLE`.
"""

from __future__ import annotations

import os

import keras
from keras import ops

from ..specs import flownet2_sd as spec
from ..specs.flownet2_sd import DECODER, DIV_FLOW, ENCODER, LEAKY_SLOPE, RGB_MAX
from .layers import TorchBilinearResize, TorchConv2D, TorchConv2DTranspose, TorchLeakyReLU
from .input_checks import InputCheckedModel
from .weights import load_canonical_into_keras


@keras.saving.register_keras_serializable(package="zoo")
class FlowNetInput(keras.layers.Layer):
    """(B, 2, H, W, 3) in [0, 255] -> (B, H, W, 6): subtract the per-sample, per-channel mean
    over both frames, divide by 255, stack frame 0's RGB then frame 1's."""

    def call(self, frames):
        # In float64: TF's float32 mean over ~500k pixels drifts by ~1e-2 (PyTorch's
        # pairwise sum does not), which would reach the flow as ~4e-3 px.
        mean = ops.cast(ops.mean(ops.cast(frames, "float64"), axis=(1, 2, 3), keepdims=True), frames.dtype)
        x = (frames - mean) / RGB_MAX
        return ops.concatenate([x[:, 0], x[:, 1]], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2], input_shape[3], 6)


def flownet2_sd(
    weights: str | os.PathLike | None = None, input_shape: tuple[int | None, int | None] = (None, None)
) -> keras.Model:
    """NVIDIA's FlowNet2-SD as a Keras model (eval output only).

    Args:
        weights: ``None`` or the path of a converted ``.safetensors`` file.
        input_shape: (H, W), multiples of 64, or None for any.

    Returns an inference model, with or without weights (it has no batch norm
    or dropout: ``training`` changes nothing). Input: float32 (B, 2, H, W, 3),
    RGB in [0, 255]; a non-float32 array (uint8 frames, float64) raises
    :class:`zoo.errors.InputTypeError`, one in the PyTorch layout (B, 3, 2, H, W)
    :class:`zoo.errors.InputShapeError`.
    """
    frames = keras.Input((2, *input_shape, 3), name="frames")
    x = FlowNetInput(name="normalize")(frames)
    features = {}
    for name, _, out_channels, stride in ENCODER:
        x = TorchConv2D(out_channels, 3, stride, 1, name=f"{name}.0")(x)
        x = TorchLeakyReLU(LEAKY_SLOPE, name=f"{name}.1")(x)
        features[name] = x
    flow = TorchConv2D(2, 3, 1, 1, name="predict_flow6")(x)
    concat = x
    for level, (_, deconv_out, _, inter_out) in DECODER.items():
        upsampled = TorchConv2DTranspose(2, 4, 2, 1, name=f"upsampled_flow{level + 1}_to_{level}")(flow)
        deconv = TorchConv2DTranspose(deconv_out, 4, 2, 1, name=f"deconv{level}.0")(concat)
        deconv = TorchLeakyReLU(LEAKY_SLOPE, name=f"deconv{level}.1")(deconv)
        concat = keras.layers.Concatenate(name=f"concat{level}")([features[f"conv{level}_1"], deconv, upsampled])
        inter = TorchConv2D(inter_out, 3, 1, 1, name=f"inter_conv{level}.0")(concat)
        flow = TorchConv2D(2, 3, 1, 1, name=f"predict_flow{level}")(inter)
    flow = keras.layers.Rescaling(DIV_FLOW, name="div_flow")(flow)
    outputs = TorchBilinearResize(scale_factor=4, name="upsample1")(flow)
    model = InputCheckedModel(frames, outputs, name="flownet2_sd")
    if weights is not None:
        load_canonical_into_keras(model, weights, "flownet2_sd", spec.TABLE)
    return model
