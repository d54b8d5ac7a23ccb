"""Input checks that turn a wrong layout into an error that says so."""

from __future__ import annotations

import torch

from ..errors import InputShapeError, InputTypeError


def check_nchw(x: torch.Tensor, channels: int | None, where: str) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is 4-D NCHW with ``channels`` channels."""
    if x.dim() != 4:
        raise InputShapeError(f"{where} expects a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        hint = " (is it NHWC? PyTorch layers take NCHW)" if x.shape[-1] == channels else ""
        raise InputShapeError(
            f"{where} expects {channels} input channels at dim 1 of NCHW, got shape {tuple(x.shape)}{hint}"
        )


def _describe(x: object) -> str:
    kind = type(x)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"
    dtype = getattr(x, "dtype", None)
    return f"{name} of dtype {str(dtype).removeprefix('torch.')}" if dtype is not None else name


def check_input_tensor(x: object, dtype: torch.dtype, layout: str, where: str) -> None:
    """Raise :class:`InputTypeError` unless ``x`` is a ``torch.Tensor`` of ``dtype``.

    ``layout`` describes the expected shape for the message, e.g. "NCHW (B, 3, H, W)".
    Models call this first in ``forward``: a NumPy array, a float64 array or a
    uint8 image would otherwise fail deep inside a convolution (or, for float64,
    after a silent conversion elsewhere) with an error that does not say what to pass.
    """
    if isinstance(x, torch.Tensor) and x.dtype == dtype:
        return
    want = str(dtype).removeprefix("torch.")
    if not isinstance(x, torch.Tensor) and hasattr(x, "__array__"):
        fix = f"convert with torch.from_numpy(x).to(torch.{want})"
    elif isinstance(x, torch.Tensor) and not (x.is_floating_point() or x.is_complex()):
        fix = f"images must be preprocessed to {want} first (see zoo.preprocessing), e.g. x.to(torch.{want})"
    else:
        fix = f"convert with x.to(torch.{want})"
    raise InputTypeError(f"{where} expects a torch.Tensor of dtype {want} in {layout}; got {_describe(x)}: {fix}")


def parameter_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype of ``module``'s first parameter: float32 unless the user converted the model (``.double()``)."""
    for parameter in module.parameters():
        return parameter.dtype
    return torch.float32
