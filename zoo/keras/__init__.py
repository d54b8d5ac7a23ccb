"""zoo.keras: the Keras 3 side of zoo (channels_last), on any Keras backend.

The models build, load weights and run under ``KERAS_BACKEND=tensorflow``,
``jax`` or ``torch`` with the same outputs; nothing here imports TensorFlow
itself (only Keras's TensorFlow backend does). Importing this package imports
Keras and its backend; ``import zoo`` does not. Without them, the import fails
with a message naming the extra to install (``zoo[keras]``, ``zoo[tensorflow]``
or ``zoo[jax]``).

Each registered model's Keras builder is an attribute under the model's name
and under the builder's own (``zoo.keras.resnet50``, ``zoo.keras.resnet50_tf_compat``).
"""

from typing import Any

from ..registry import builder_aliases, get_model_entry
from ._require import require_keras

require_keras()

from . import layers  # noqa: E402 - imports Keras: after the check, which names the extra to install


def _builder_names() -> dict[str, str]:
    """Attribute -> registry name: each model's Keras builder, under the model's name and the builder's own."""
    return builder_aliases("keras")


def _bind_builders() -> None:
    """Make each registered model's builder an attribute of this package.

    Importing a port's module (``zoo.keras.mobilenet_v1``) sets the package
    attribute of that name to the module; binding afterwards makes the
    attribute the builder, as on ``zoo``. ``from zoo.keras.mobilenet_v1 import
    ...`` still works: it reads ``sys.modules``.
    """
    for attribute, model in _builder_names().items():
        globals()[attribute] = get_model_entry(model).builder("keras")


_bind_builders()


def __getattr__(name: str) -> Any:
    # Computed on each use, so that models registered at run time are found and listed too.
    if name == "__all__":
        return sorted({"layers", *_builder_names()})
    model = _builder_names().get(name)
    if model is not None:
        return get_model_entry(model).builder("keras")
    raise AttributeError(f"module 'zoo.keras' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_builder_names()})
