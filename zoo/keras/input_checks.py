"""The Keras ports' input checks: the same errors as the PyTorch side, before Keras converts anything.

A Keras functional model converts whatever it is called on to its input
dtype: a uint8 image or a float64 array would run silently, un-preprocessed
or rounded. :class:`InputCheckedModel` is a functional model whose
``__call__``, ``predict`` and ``predict_on_batch`` first check the input's
dtype and shape against the model's ``keras.Input``, raising
:class:`zoo.errors.InputTypeError` / :class:`zoo.errors.InputShapeError`.
The check is a few attribute reads per call (once per trace inside
``tf.function``); symbolic inputs (``keras.Input``) are checked the same way.
"""

from __future__ import annotations

from typing import Any

import keras

from ..errors import InputShapeError, InputTypeError


def _describe(x: object) -> str:
    kind = type(x)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return name
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except ValueError:
        pass
    return f"{name} of dtype {dtype}"


def _layout(spec: tuple) -> str:
    names = {4: ("B", "H", "W", "C"), 5: ("B", "T", "H", "W", "C")}.get(len(spec))
    if names is None:
        return str(spec)
    return "(" + ", ".join(n if d is None else str(d) for n, d in zip(names, spec)) + ")"


def check_keras_input(x: Any, spec: tuple, dtype: str, where: str, spatial_multiple: int | None = None,
                      size_hint: str | None = None) -> None:
    """Raise unless ``x`` is an array or tensor of ``dtype`` whose shape fits ``spec`` (None = any).

    ``spec`` includes the batch axis, e.g. ``(None, None, None, 3)`` for NHWC RGB.
    ``spatial_multiple``: H and W (the two axes before the channels) must be
    multiples of it, where they are known; ``size_hint`` is added to that error
    (how to feed other sizes).
    """
    x_dtype = getattr(x, "dtype", None)
    shape = getattr(x, "shape", None)
    if x_dtype is None or shape is None:
        raise InputTypeError(
            f"{where} expects a {dtype} array or tensor shaped {_layout(spec)}; got {_describe(x)}: "
            f"convert with np.asarray(x, dtype=np.{dtype})"
        )
    try:
        same = keras.backend.standardize_dtype(x_dtype) == dtype
    except ValueError:
        same = False
    if not same:
        fix = f"x.astype(np.{dtype})" if hasattr(x, "astype") else f"keras.ops.cast(x, '{dtype}')"
        if "int" in str(x_dtype) or "bool" in str(x_dtype):
            fix = f"images must be preprocessed to {dtype} first (see zoo.preprocessing), e.g. {fix}"
        else:
            fix = f"convert with {fix}"
        raise InputTypeError(f"{where} expects {dtype} input shaped {_layout(spec)}; got {_describe(x)}: {fix}")
    shape = tuple(shape)
    if len(shape) != len(spec) or any(w is not None and d is not None and d != w for d, w in zip(shape, spec)):
        hint = ""
        channels = spec[-1]
        if len(shape) == len(spec) == 4 and shape[1] == channels and shape[-1] != channels:
            hint = " (is it NCHW? Keras models take NHWC: transpose with x.transpose(0, 2, 3, 1))"
        elif len(shape) == len(spec) == 5 and shape[1] == channels and shape[2] == spec[1]:
            hint = (f" (is it the PyTorch layout (B, {channels}, {spec[1]}, H, W)? transpose with "
                    "x.transpose(0, 2, 3, 4, 1))")
        raise InputShapeError(f"{where} expects input shaped {_layout(spec)}; got shape {shape}{hint}")
    if spatial_multiple:
        height, width = shape[-3], shape[-2]
        if any(n is not None and int(n) % spatial_multiple for n in (height, width)):
            raise InputShapeError(f"{where} needs H and W to be multiples of {spatial_multiple}, got "
                                  f"{height}x{width}" + (f"; {size_hint}" if size_hint else ""))


@keras.saving.register_keras_serializable(package="zoo")
class InputCheckedModel(keras.Model):
    """A functional ``keras.Model`` that checks its input's dtype and shape before Keras converts it.

    Built like ``keras.Model(inputs, outputs, name=...)``; ``isinstance(m,
    keras.Model)`` holds and ``get_config`` is the functional config (plus
    ``spatial_multiple`` and ``size_hint`` when set). ``spatial_multiple``: H
    and W must be multiples of it, else :class:`zoo.errors.InputShapeError`
    (with ``size_hint`` added) before any layer runs.
    """

    def __init__(self, *args: Any, spatial_multiple: int | None = None, size_hint: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spatial_multiple = spatial_multiple
        self.size_hint = size_hint

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.spatial_multiple:
            config["spatial_multiple"] = self.spatial_multiple
        if self.size_hint:
            config["size_hint"] = self.size_hint
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> "InputCheckedModel":
        config = dict(config)
        spatial_multiple = config.pop("spatial_multiple", None)
        size_hint = config.pop("size_hint", None)
        model = super().from_config(config, custom_objects=custom_objects)
        model.spatial_multiple = spatial_multiple
        model.size_hint = size_hint
        return model

    def _check_input(self, x: Any) -> None:
        if len(self.inputs) != 1:
            return  # not a single-input model: nothing here knows the layout
        if isinstance(x, dict) and len(x) == 1:
            (x,) = x.values()  # {"input": x}, keyed by the Input's name
        elif isinstance(x, (list, tuple)) and len(x) == 1 and hasattr(x[0], "dtype"):
            (x,) = x  # [x]: one array per model input
        spec = self.inputs[0]
        check_keras_input(x, tuple(spec.shape), keras.backend.standardize_dtype(spec.dtype), self.name,
                          getattr(self, "spatial_multiple", None), getattr(self, "size_hint", None))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._check_input(args[0] if args else kwargs.get("inputs"))
        return super().__call__(*args, **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if hasattr(x, "dtype") or isinstance(x, (list, tuple)):  # arrays; datasets and generators pass
            self._check_input(x)
        return super().predict(x, *args, **kwargs)

    def predict_on_batch(self, x: Any) -> Any:
        self._check_input(x)
        return super().predict_on_batch(x)
