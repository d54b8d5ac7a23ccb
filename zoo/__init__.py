"""zoo: hand-ported models that compute exactly what their upstream originals compute.

PyTorch definitions live here and import without TensorFlow; the Keras side is
``zoo.keras``, imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import FormatError, InputShapeError, TensorShapeError, ZooError
from .models.flownet2_sd import flownet2_sd
from .models.mobilenet_v1 import mobilenet_v1_tf_compat
from .models.resnet50 import resnet50_tf_compat
from .registry import get_model_entry, list_models

__version__ = "0.1.0"

__all__ = [
    "FormatError",
    "InputShapeError",
    "TensorShapeError",
    "ZooError",
    "__version__",
    "flownet2_sd",
    "get_model_entry",
    "keras",
    "list_models",
    "mobilenet_v1_tf_compat",
    "resnet50_tf_compat",
]


def __getattr__(name: str) -> Any:
    # `zoo.keras` after a plain `import zoo`, without importing TensorFlow up front.
    if name == "keras":
        return importlib.import_module(".keras", __name__)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
