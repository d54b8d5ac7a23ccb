"""zoo: hand-ported models that compute exactly what their upstream originals compute.

PyTorch definitions live here and import without TensorFlow; the Keras side is
``zoo.keras``, imported on first use. ``zoo.create_model(name, weights=None,
framework="torch")`` builds any of ``zoo.list_models()`` in either framework;
the registry names are also the builders (``zoo.resnet50``, ``zoo.keras.resnet50``).
``zoo.fast_inference_model(model)`` is a port's fast inference form (batch norm
folded, compiled and frozen; :mod:`zoo.fast`).
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
from .registry import get_model_entry, list_models

# The PyTorch builders (attribute -> module, function), imported on first use so
# that `import zoo.keras` imports neither zoo.models nor torch. The registry
# names are builders too: zoo.mobilenet_v1 is what create_model("mobilenet_v1") calls.
_TORCH_BUILDERS = {
    "flownet2_sd": (".models.flownet2_sd", "flownet2_sd"),
    "mobilenet_v1_tf_compat": (".models.mobilenet_v1", "mobilenet_v1_tf_compat"),
    "mobilenet_v1": (".models.mobilenet_v1", "mobilenet_v1_tf_compat"),
    "resnet50_tf_compat": (".models.resnet50", "resnet50_tf_compat"),
    "resnet50": (".models.resnet50", "resnet50_tf_compat"),
}

# The fast form (zoo.fast), imported on first use: it imports torch._inductor's config lazily too.
_FAST = {
    "FastInferenceModel": (".fast", "FastInferenceModel"),
    "fast_inference_model": (".fast", "fast_inference_model"),
}

__version__ = "0.1.0"

__all__ = [
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
    "flownet2_sd",
    "get_model_entry",
    "keras",
    "list_models",
    "mobilenet_v1",
    "mobilenet_v1_tf_compat",
    "resnet50",
    "resnet50_tf_compat",
]


def __getattr__(name: str) -> Any:
    # `zoo.keras` after a plain `import zoo`, without importing TensorFlow up front.
    if name == "keras":
        return importlib.import_module(".keras", __name__)
    if name in _TORCH_BUILDERS or name in _FAST:
        module, function = _TORCH_BUILDERS.get(name) or _FAST[name]
        return getattr(importlib.import_module(module, __name__), function)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
