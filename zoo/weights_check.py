"""The value checks every weights loader runs: float32 only (unless a cast is asked for), no NaN or Inf.

A converted ``.safetensors`` file is float32 (:mod:`zoo.convert.canonical`).
A file of another dtype was made some other way (a half-precision export, a
quantized copy): it is refused, naming the tensor, unless the caller passes
``cast=True``, which casts every tensor to float32 on load. NaN and Inf are
refused always, naming the tensor and how many values. Works on NumPy arrays
and PyTorch tensors alike; torch is never imported here.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from .errors import FormatError


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")


def _dtype_name(value: Any) -> str:
    return str(value.dtype).removeprefix("torch.")


def checked_float32(
    state: Mapping[str, Any],
    source: str | os.PathLike,
    cast: bool = False,
    skip_dtype: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``state`` with every tensor float32 (cast when ``cast``) and finite; else :class:`FormatError`.

    Tensors whose names end with one of ``skip_dtype`` (counters such as
    ``num_batches_tracked``) are passed through unchecked.
    """
    out: dict[str, Any] = {}
    for name in sorted(state):
        value = state[name]
        if skip_dtype and name.endswith(skip_dtype):
            out[name] = value
            continue
        if _dtype_name(value) != "float32":
            if not cast:
                raise FormatError(
                    f"{source}: tensor {name} is {_dtype_name(value)}; converted weights are float32 "
                    "(convert the upstream file again, or load with cast=True to cast every tensor to float32)"
                )
            if value.is_complex() if _is_torch(value) else np.iscomplexobj(value):
                raise FormatError(f"{source}: tensor {name} is {_dtype_name(value)}, which cannot be cast to float32")
            value = value.float() if _is_torch(value) else np.asarray(value, dtype=np.float32)
        array = value.detach().cpu().numpy() if _is_torch(value) else np.asarray(value)
        finite = np.isfinite(array)
        if not finite.all():
            nan = int(np.isnan(array).sum())
            inf = int(array.size - finite.sum()) - nan
            what = ", ".join(part for part in (f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else "") if part)
            raise FormatError(f"{source}: tensor {name} holds non-finite values ({what} of {array.size})")
        out[name] = value
    return out
