"""The one place that imports Keras, with an error that says which extra to install.

Keras 3 runs on TensorFlow, JAX or PyTorch, chosen by ``KERAS_BACKEND`` (or
``~/.keras/keras.json``) when Keras is first imported; its default is
TensorFlow. zoo.keras needs only Keras and the chosen backend.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

# Backend -> the zoo extra that installs it together with Keras. PyTorch is
# zoo's own dependency, so the torch backend needs only the `keras` extra.
BACKEND_EXTRAS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "keras"}
INSTALL_HINT = "pip install 'zoo[keras]'  (Keras >= 3; add 'zoo[tensorflow]' or 'zoo[jax]' for those backends)"


def _install_hint(backend: str) -> str:
    extra = BACKEND_EXTRAS.get(backend, "keras")
    return f"pip install 'zoo[{extra}]'"


def require_keras() -> ModuleType:
    """Import and return Keras 3, or raise ImportError naming the extra to install.

    A missing Keras names ``zoo[keras]``; a missing backend names the backend's
    extra (``zoo[tensorflow]``, ``zoo[jax]``) and how to pick another backend.
    """
    try:
        keras = importlib.import_module("keras")
    except ImportError as error:
        missing = (getattr(error, "name", None) or "").split(".")[0]
        if missing in BACKEND_EXTRAS and missing != "torch":
            chosen = os.environ.get("KERAS_BACKEND", "tensorflow (Keras's default)")
            raise ImportError(
                f"zoo.keras: Keras's backend {chosen} needs {missing}, which is not installed: "
                f"{_install_hint(missing)}, or set KERAS_BACKEND=torch (needs only 'zoo[keras]') "
                "before Keras is imported"
            ) from error
        raise ImportError(f"zoo.keras needs Keras 3, which is not installed: {INSTALL_HINT}") from error
    major = int(str(getattr(keras, "__version__", "0")).split(".")[0] or 0)
    if major < 3:
        raise ImportError(f"zoo.keras needs Keras >= 3, found keras {keras.__version__}: {INSTALL_HINT}")
    return keras
