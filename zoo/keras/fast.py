"""The fast form of a Keras port under TensorFlow: batch norm folded, in a ``tf.function``, XLA where it pays.

The TensorFlow-only counterpart of :func:`zoo.fast_inference_model` (this is
the one module of ``zoo.keras`` that imports TensorFlow; the ports themselves
run on any Keras backend)::

    import zoo
    from zoo.keras.fast import fast_inference_function
    run = fast_inference_function(zoo.keras.resnet50_tf_compat(weights="mlperf"))
    logits = run(x_nhwc)      # float32 NHWC array or tensor -> tf.Tensor; the first call per shape traces

Each input shape is traced (and, with XLA, compiled) once, on its first call.
"""

from __future__ import annotations

from typing import Any, Callable

import keras

from ..errors import ArgumentError, InputTypeError
from .fold import fold_batch_norms

# XLA (jit_compile=True) per port, chosen by measurement: the full benchmarks/run.py of
# 2026-12-03 07:12 UTC (idle 2-core AVX-512 EPYC, tensorflow-cpu 2.21; ms per batch, folded
# tf.function without vs with XLA, both exact):
#   mobilenet_v1  224x224 batch 1:  17.9 vs  17.6;  batch 32:  250 vs  236
#   resnet50      224x224 batch 1:  52.7 vs  61.8;  batch 32: 1349 vs 1335
#   flownet2_sd   384x512 batch 1:   309 vs   282 (unfolded);  batch 4: 1094 vs 1149
# XLA is 17% slower for ResNet-50 at batch 1 and otherwise within this VM's +-15% run-to-run
# noise (an earlier run under load measured it 10x slower for MobileNet-v1), so it is off for
# every port; jit_compile=True still works (and is tested exact).
JIT_COMPILE: dict[str, bool] = {
    "mobilenet_v1_tf_compat": False,
    "resnet50_tf_compat": False,
    "flownet2_sd": False,
}


def _base_name(model: keras.Model) -> str:
    name = model.name
    return name[: -len("_folded")] if name.endswith("_folded") else name


def fast_inference_function(model: keras.Model, jit_compile: bool | None = None) -> Callable[[Any], Any]:
    """``model`` (a zoo Keras port) folded and wrapped in a ``tf.function``: NHWC float32 in, ``tf.Tensor`` out.

    Batch norm is folded into the convolutions (:func:`zoo.keras.fold.fold_batch_norms`,
    float64 algebra rounded once). ``jit_compile=None`` uses XLA for the ports
    where it measured faster (:data:`JIT_COMPILE`); ``True``/``False`` force it.
    Needs ``KERAS_BACKEND=tensorflow``.

    Raises:
        ArgumentError: Keras runs on another backend.
        InputTypeError: ``model`` is not a functional Keras model, or an input is not float32.
    """
    if keras.backend.backend() != "tensorflow":
        raise ArgumentError(f"zoo.keras.fast needs KERAS_BACKEND=tensorflow, Keras runs on {keras.backend.backend()!r}")
    import tensorflow as tf

    folded = fold_batch_norms(model)
    if jit_compile is None:
        jit_compile = JIT_COMPILE.get(_base_name(model), False)

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
