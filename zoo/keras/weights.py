"""Loading canonical (PyTorch-layout) weights into the Keras models.

Each Keras layer that holds weights is named after the PyTorch module it
mirrors (``features.conv2d_1_depthwise.conv``), so the canonical name of every
Keras weight follows from the layer's name and class; layouts come from
:mod:`zoo.layouts`. There is no per-model table on this side.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from ..errors import FormatError, TensorShapeError
from ..layouts import BATCHNORM_TORCH_TO_TF, Layout, torch_to_tf
from ..weights import resolve_weights


def _layer_tensors(layer: keras.layers.Layer) -> list[tuple[str, Layout | None, str]]:
    """(canonical name, layout, Keras attribute) for each weight of ``layer``."""
    prefix = layer.name
    if isinstance(layer, keras.layers.BatchNormalization):
        return [(f"{prefix}.{t}", Layout.VECTOR, k) for t, k in BATCHNORM_TORCH_TO_TF.items()]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel = [(f"{prefix}.weight", Layout.DEPTHWISE, "kernel")]
    elif isinstance(layer, keras.layers.Conv2DTranspose):
        kernel = [(f"{prefix}.weight", Layout.CONV_TRANSPOSE, "kernel")]
    elif isinstance(layer, keras.layers.Conv2D):
        kernel = [(f"{prefix}.weight", Layout.CONV, "kernel")]
    elif isinstance(layer, keras.layers.Dense):
        kernel = [(f"{prefix}.weight", Layout.DENSE, "kernel")]
    else:
        raise TypeError(f"no canonical layout for Keras layer {layer.name} ({type(layer).__name__})")
    if getattr(layer, "use_bias", False):
        kernel.append((f"{prefix}.bias", Layout.VECTOR, "bias"))
    return kernel


def load_canonical_into_keras(model: keras.Model, weights: str | os.PathLike, model_name: str | None = None) -> None:
    """Load a converted ``.safetensors`` file (or ``model_name``'s weights tag) into ``model``, strictly."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = resolve_weights(weights, model_name)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise FormatError(f"{path}: not a readable .safetensors file ({error})") from None
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        for name, layout, attribute in _layer_tensors(layer):
            if name not in state:
                raise FormatError(f"{path}: missing tensor {name}")
            variable = getattr(layer, attribute)
            multiplier = int(variable.shape[-1]) if layout is Layout.DEPTHWISE else 1
            try:
                value = torch_to_tf(layout, state[name], channel_multiplier=multiplier)
            except ValueError:
                value = state[name]
            if tuple(value.shape) != tuple(variable.shape):
                raise TensorShapeError(
                    f"{path}: tensor {name} has shape {tuple(state[name].shape)}, "
                    f"which does not fit Keras weight {variable.path} {tuple(variable.shape)}"
                )
            variable.assign(np.asarray(value, dtype=variable.dtype))
            used.add(name)
    unexpected = sorted(set(state) - used)
    if unexpected:
        raise FormatError(f"{path}: unexpected tensor(s) {', '.join(unexpected[:5])}")
