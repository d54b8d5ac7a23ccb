"""The fast form of a Keras port under TensorFlow: batch norm folded, in a ``tf.function``, XLA on request.

The TensorFlow-only counterpart of :func:`zoo.fast_inference_model` (this is
the one module of ``zoo.keras`` that imports TensorFlow; the ports themselves
run on any Keras backend)::

    import zoo
    from zoo.keras.fast import fast_inference_function
    run = fast_inference_function(zoo.keras.resnet50_tf_compat(weights="mlperf"))
    logits = run(x_nhwc)      # float32 NHWC array or tensor -> tf.Tensor; the first call per shape traces

Each input shape is traced (and, with XLA, compiled) once, on its first call.
XLA is off by default: on CPU it measured no faster for any port
(``docs/benchmarks.md``, the ``keras-xla`` rows); ``jit_compile=True`` turns it on.
"""

from __future__ import annotations

from typing import Any, Callable

import keras

from ..errors import ArgumentError, InputTypeError
from .fold import fold_batch_norms


def _base_name(model: keras.Model) -> str:
    name = model.name
    return name[: -len("_folded")] if name.endswith("_folded") else name


def fast_inference_function(model: keras.Model, jit_compile: bool = False) -> Callable[[Any], Any]:
    """``model`` (a zoo Keras port) folded and wrapped in a ``tf.function``: NHWC float32 in, ``tf.Tensor`` out.

    Batch norm is folded into the convolutions (:func:`zoo.keras.fold.fold_batch_norms`,
    float64 algebra rounded once). ``jit_compile=True`` compiles the function
    with XLA (exact too, but not faster on CPU). Needs ``KERAS_BACKEND=tensorflow``.
    The returned function has the attributes ``jit_compile`` and ``folded`` (the folded model).

    Raises:
        ArgumentError: Keras runs on another backend.
        InputTypeError: ``model`` is not a functional Keras model, or an input is not float32.
    """
    if keras.backend.backend() != "tensorflow":
        raise ArgumentError(f"zoo.keras.fast needs KERAS_BACKEND=tensorflow, Keras runs on {keras.backend.backend()!r}")
    import tensorflow as tf

    folded = fold_batch_norms(model)
    jit_compile = bool(jit_compile)

    @tf.function(jit_compile=jit_compile)
    def forward(x: Any) -> Any:
        return folded(x, training=False)

    def run(x: Any) -> Any:
        dtype = getattr(x, "dtype", None)
        if dtype is None or str(getattr(dtype, "name", dtype)) != "float32":
            raise InputTypeError(f"{_base_name(model)} fast form expects a float32 NHWC array or tensor, got "
                                 f"{type(x).__name__} of dtype {dtype}")
        return forward(tf.convert_to_tensor(x))

    run.jit_compile = jit_compile  # type: ignore[attr-defined]
    run.folded = folded  # type: ignore[attr-defined]
    return run
