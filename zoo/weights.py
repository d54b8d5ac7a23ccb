"""Loading a converted weights file (canonical ``.safetensors``) into a PyTorch model.

A converted file holds the model's ``state_dict`` under PyTorch names and
layouts (float32). Loading is strict: every tensor the model needs must be
there with its shape, and nothing else may be; every tensor must be float32
(or cast on request) and finite. Errors name the tensor. This module loads a
file only: a weights tag is resolved to its file by :func:`zoo.hub.resolve_weights`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .convert.canonical import check_names_and_shapes
from .errors import FormatError
from .weights_check import checked_float32

# Buffers the model keeps that carry no upstream weight.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a canonical ``.safetensors`` file into ``{name: tensor}``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise FormatError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise FormatError(f"{path}: not a readable .safetensors file ({error})") from None


def load_torch_weights(model: nn.Module, path: str | os.PathLike, *, cast: bool = False) -> None:
    """Load the converted file at ``path`` into ``model``, strictly.

    Every tensor must be float32 and finite (:func:`zoo.weights_check.checked_float32`);
    ``cast=True`` casts a file of another dtype (float16, int8, ...) to float32
    instead of refusing it. The builders take ``cast_weights=True`` for the same.
    """
    path = Path(path).expanduser()
    state = read_state_dict(path)
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    check_names_and_shapes(expected, state, path, optional_suffixes=_OPTIONAL_SUFFIXES)
    state = checked_float32(state, path, cast=cast, skip_dtype=_OPTIONAL_SUFFIXES)
    model.load_state_dict(state, strict=False)
