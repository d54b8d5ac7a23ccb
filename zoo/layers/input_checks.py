"""Input checks that turn a wrong layout into an error that says so."""

from __future__ import annotations

import torch

from ..errors import InputShapeError


def check_nchw(x: torch.Tensor, channels: int | None, where: str) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is 4-D NCHW with ``channels`` channels."""
    if x.dim() != 4:
        raise InputShapeError(f"{where} expects a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        hint = " (is it NHWC? PyTorch layers take NCHW)" if x.shape[-1] == channels else ""
        raise InputShapeError(
            f"{where} expects {channels} input channels at dim 1 of NCHW, got shape {tuple(x.shape)}{hint}"
        )
