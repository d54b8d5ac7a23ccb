"""Loading canonical (PyTorch-layout) weights into the Keras models, through the model's name table.

The table (:mod:`zoo.specs`, one per model) gives, for every canonical
tensor, the Keras layer and attribute that receive it and the layout rule
(:mod:`zoo.layouts`). Loading is strict: every tensor in the table must be in
the file with a shape that fits its Keras weight, the file may hold nothing
else, and every weight of the Keras model must be in the table; every tensor
must be float32 (or cast on request) and finite. This module loads a file
only: a weights tag is resolved to its file by :func:`zoo.hub.resolve_weights`.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from ..errors import ArgumentError, FormatError, TensorShapeError
from ..layouts import torch_to_tf
from ..registry import name_table
from ..specs import NameTable
from ..weights_check import checked_float32


def kernel_initializer(weights: object) -> str:
    """The kernel initializer for a model built with ``weights=weights``.

    ``"zeros"`` when a file will overwrite every kernel: random initializers
    cost seconds per model on the JAX backend (one compilation per kernel
    shape) for values that are thrown away. Keras's default
    ``"glorot_uniform"`` otherwise, for a model built to be trained.
    """
    return "glorot_uniform" if weights is None else "zeros"


def load_canonical_into_keras(
    model: keras.Model,
    path: str | os.PathLike,
    model_name: str | None = None,
    table: NameTable | None = None,
    *,
    cast: bool = False,
) -> None:
    """Load the converted ``.safetensors`` file at ``path`` into ``model``, strictly.

    ``table`` defaults to ``model_name``'s name table (:func:`zoo.registry.name_table`).
    Every tensor must be float32 and finite (:func:`zoo.weights_check.checked_float32`);
    ``cast=True`` casts a file of another dtype (float16, int8, ...) to float32
    instead of refusing it. The builders take ``cast_weights=True`` for the same.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if table is None:
        if model_name is None:
            raise ArgumentError("load_canonical_into_keras needs model_name or table")
        table = name_table(model_name)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FormatError(f"weights file not found: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise FormatError(f"{path}: not a readable .safetensors file ({error})") from None
    state = checked_float32(state, path, cast=cast)
    variables = {variable.path: variable for variable in model.weights}
    unlisted = sorted(set(variables) - {spec.keras_name for spec in table})
    if unlisted:
        raise FormatError(
            f"Keras model {model.name}: weight(s) {', '.join(unlisted[:5])} are not in the "
            f"{model_name or 'model'} name table, so nothing would load them"
        )
    for spec in table:
        variable = variables.get(spec.keras_name)
        if variable is None:
            raise FormatError(
                f"Keras model {model.name} has no weight {spec.keras_name} (layer {spec.keras_layer!r}, "
                f"attribute {spec.keras_attr!r}) for tensor {spec.torch}"
            )
        if spec.torch not in state:
            raise FormatError(f"{path}: missing tensor {spec.torch} (for Keras weight {spec.keras_name})")
        array = state[spec.torch]
        try:
            value = torch_to_tf(spec.layout, array, channel_multiplier=spec.multiplier)
        except ValueError:
            value = None
        if value is None or tuple(value.shape) != tuple(variable.shape):
            raise TensorShapeError(
                f"{path}: tensor {spec.torch} has shape {tuple(array.shape)}, which does not fit Keras weight "
                f"{spec.keras_name} {tuple(variable.shape)} (a {spec.layout.value} weight; the model needs "
                f"{spec.shape} in PyTorch layout)"
            )
        variable.assign(np.asarray(value, dtype=variable.dtype))
    unexpected = sorted(set(state) - {spec.torch for spec in table})
    if unexpected:
        raise FormatError(f"{path}: unexpected tensor(s) {', '.join(unexpected[:5])}")
