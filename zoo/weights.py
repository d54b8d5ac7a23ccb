"""Loading converted weights (canonical ``.safetensors``) into the PyTorch models.

A converted file holds the model's ``state_dict`` under PyTorch names and
layouts (float32). Loading is strict: every tensor the model needs must be
there with its shape, and nothing else may be; every tensor must be float32
(or cast on request) and finite. Errors name the tensor.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .errors import FormatError, TensorShapeError
from .weights_check import checked_float32

# Buffers the model keeps that carry no upstream weight.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def resolve_weights(weights: str | os.PathLike, model_name: str | None = None) -> Path:
    """The converted file that ``weights`` names: a path, or a weights tag of ``model_name``.

    A tag (``"mlperf"``, ``"nvidia"``) is resolved by :func:`zoo.hub.converted_weights`:
    the cached file, else the published one downloaded, else the upstream file
    fetched and converted locally.
    """
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    looks_like_path = path.suffix == ".safetensors" or os.sep in str(weights) or "/" in str(weights)
    if looks_like_path or model_name is None:
        raise FormatError(f"weights file not found: {path}")
    from .hub import converted_weights

    return converted_weights(model_name, str(weights))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a canonical ``.safetensors`` file into ``{name: tensor}``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise FormatError(f"{path}: not a readable .safetensors file ({error})") from None


def check_state_dict(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: str | os.PathLike
) -> None:
    """Raise naming the tensor if ``found`` lacks, adds or mis-shapes one of ``expected``."""
    needed = {k for k in expected if not k.endswith(_OPTIONAL_SUFFIXES)}
    missing = sorted(needed - found.keys())
    unexpected = sorted(k for k in found.keys() - expected.keys())
    if missing:
        raise FormatError(f"{source}: missing tensor(s) {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        raise FormatError(f"{source}: unexpected tensor(s) {', '.join(unexpected[:5])}")
    for name in sorted(needed):
        want, got = tuple(expected[name].shape), tuple(found[name].shape)
        if want != got:
            raise TensorShapeError(f"{source}: tensor {name} has shape {got}, the model needs {want}")


def load_torch_weights(
    model: nn.Module, weights: str | os.PathLike, model_name: str | None = None, cast: bool = False
) -> None:
    """Load a converted file (or ``model_name``'s weights tag) into ``model``, strictly.

    Every tensor must be float32 and finite (:func:`zoo.weights_check.checked_float32`);
    ``cast=True`` casts a file of another dtype (float16, int8, ...) to float32
    instead of refusing it. The builders take ``cast_weights=True`` for the same.
    """
    path = resolve_weights(weights, model_name)
    state = read_state_dict(path)
    check_state_dict(model.state_dict(), state, path)
    state = checked_float32(state, path, cast=cast, skip_dtype=_OPTIONAL_SUFFIXES)
    model.load_state_dict(state, strict=False)
