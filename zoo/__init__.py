"""zoo: hand-ported models that compute exactly what their upstream originals compute.

PyTorch definitions live here and import without TensorFlow; the Keras side is
``zoo.keras``, imported on first use. ``zoo.create_model(name, weights=None,
framework="torch")`` builds any of ``zoo.list_models()`` in either framework;
the registry names are also the builders (``zoo.resnet50``, ``zoo.keras.resnet50``).
``zoo.fast_inference_model(model)`` is a port's fast inference form (batch norm
folded, compiled and frozen; :mod:`zoo.fast`). ``zoo.register_model(entry)``
adds a model defined outside zoo (``docs/adding-a-model.md``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    FormatError,
    InputShapeError,
    InputTypeError,
    TensorShapeError,
    UnknownFrameworkError,
    UnknownModelError,
    ZooError,
)
from .factory import create_model
from .registry import builder_aliases, get_model_entry, list_models, register_model, unregister_model

# The fast form (zoo.fast), imported on first use: it imports torch._inductor's config lazily too.
_FAST = {
    "FastInferenceModel": (".fast", "FastInferenceModel"),
    "fast_inference_model": (".fast", "fast_inference_model"),
}

__version__ = "0.1.0"

# The names defined here; the registry adds its models' builders (_builder_names).
_PUBLIC = [
    "FastInferenceModel",
    "FormatError",
    "InputShapeError",
    "InputTypeError",
    "TensorShapeError",
    "UnknownFrameworkError",
    "UnknownModelError",
    "ZooError",
    "__version__",
    "create_model",
    "fast_inference_model",
    "get_model_entry",
    "keras",
    "list_models",
    "register_model",
    "unregister_model",
]


def _builder_names() -> dict[str, str]:
    """Attribute -> registry name: each model's PyTorch builder, under the model's name and the builder's own."""
    return builder_aliases("torch")


def __getattr__(name: str) -> Any:
    # Computed on each use, so that models registered at run time are listed too.
    if name == "__all__":
        return sorted({*_PUBLIC, *_builder_names()})
    # `zoo.keras` after a plain `import zoo`, without importing TensorFlow up front.
    if name == "keras":
        return importlib.import_module(".keras", __name__)
    if name in _FAST:
        module, function = _FAST[name]
        return getattr(importlib.import_module(module, __name__), function)
    # The builders, imported on first use so that `import zoo.keras` imports neither zoo.models nor torch.
    model = _builder_names().get(name)
    if model is not None:
        return get_model_entry(model).builder("torch")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC, *_builder_names()})
