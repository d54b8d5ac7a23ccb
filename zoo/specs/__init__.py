"""What zoo knows about each model, without PyTorch or Keras: one module per model.

``zoo.specs.<model>`` holds the architecture (layer lists, channel widths,
strides, epsilons), the facts about the real upstream files (graph node
names, release members, Caffe layer names) and the model's one name table
(:class:`~zoo.specs.common.TensorSpec` per tensor: upstream name, PyTorch
``state_dict`` key, Keras weight, layout rule, shape). The PyTorch models,
the Keras models, the converters and the stand-in writers all read it; it
imports neither framework. A model's table is
``zoo.registry.name_table(model)``.
"""

from __future__ import annotations

from .common import KERAS_SEPARATOR, NameTable, TensorSpec, keras_layer_name, torch_module_path

__all__ = ["KERAS_SEPARATOR", "NameTable", "TensorSpec", "keras_layer_name", "torch_module_path"]
