"""The one place that imports Keras, with an error that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'zoo[keras]'  (TensorFlow >= 2.16 and Keras >= 3)"


def require_keras() -> ModuleType:
    """Import and return Keras 3, or raise ImportError naming the extra to install."""
    try:
        keras = importlib.import_module("keras")
    except ImportError as error:
        raise ImportError(f"zoo.keras needs Keras 3 with TensorFlow, which is not installed: {INSTALL_HINT}") from error
    major = int(str(getattr(keras, "__version__", "0")).split(".")[0] or 0)
    if major < 3:
        raise ImportError(f"zoo.keras needs Keras >= 3, found keras {keras.__version__}: {INSTALL_HINT}")
    return keras
