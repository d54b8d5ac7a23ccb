"""What zoo knows about each model, without PyTorch or Keras: one module per model.

``zoo.specs.<model>`` holds the architecture (layer lists, channel widths,
strides, epsilons), the facts about the real upstream files (graph node
names, release members, Caffe layer names) and the model's one name table
(:class:`~zoo.specs.common.TensorSpec` per tensor: upstream name, PyTorch
``state_dict`` key, Keras weight, layout rule, shape). The PyTorch models,
the Keras models, the converters and the stand-in writers all read it; it
imports neither framework.
"""

from __future__ import annotations

import importlib

from ..errors import UnknownModelError
from ..registry import list_models
from .common import KERAS_SEPARATOR, NameTable, TensorSpec, keras_layer_name, torch_module_path

MODELS = tuple(list_models())  # one spec module per registered model

__all__ = ["KERAS_SEPARATOR", "MODELS", "NameTable", "TensorSpec", "keras_layer_name", "name_table",
           "torch_module_path"]


def name_table(model: str) -> NameTable:
    """The name table of ``model`` (one of :data:`MODELS`)."""
    if model not in MODELS:
        raise UnknownModelError(f"no name table for model {model!r}; known: {', '.join(MODELS)}")
    return importlib.import_module(f"{__name__}.{model}").TABLE
