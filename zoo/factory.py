"""``zoo.create_model``: build any registered model by name, in PyTorch or Keras."""

from __future__ import annotations

import os
from typing import Any

from .errors import UnknownFrameworkError
from .registry import FRAMEWORKS, get_model_entry


def create_model(name: str, weights: str | os.PathLike | None = None, framework: str = "torch", **kwargs: Any) -> Any:
    """Build the model ``name`` (one of :func:`zoo.list_models`) in ``framework``.

    Args:
        name: a registry name, e.g. ``"resnet50"``.
        weights: ``None`` for random initialisation, or what the builder
            takes: the path of a converted ``.safetensors`` file, or a weights tag.
        framework: ``"torch"`` (an ``nn.Module``, NCHW) or ``"keras"`` (a
            ``keras.Model``, NHWC; imports Keras and TensorFlow on first use).
        **kwargs: passed on to the builder, e.g. ``num_classes``, or
            ``input_shape`` for Keras.

    The model is returned ready for inference, with or without weights: a
    PyTorch model is in eval mode (``model.training is False``); a Keras model
    runs batch norm on its moving statistics unless called with ``training=True``.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists the known names).
        UnknownFrameworkError: ``framework`` is neither "torch" nor "keras".
    """
    if framework not in FRAMEWORKS:
        raise UnknownFrameworkError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    return get_model_entry(name).builder(framework)(weights=weights, **kwargs)
