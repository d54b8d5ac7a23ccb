"""FlowNet2-SD (NVIDIA ``FlowNet2-SD_checkpoint.pth.tar``) -> canonical weights.

The checkpoint is ``torch.save({'epoch', 'state_dict', 'best_EPE'})`` (training
checkpoints add ``'arch'``). It is read with ``torch.load(weights_only=True)``:
a file that needs anything beyond tensors and plain containers to unpickle is
refused, never executed. The canonical names are NVIDIA's own, so the name map
is the identity; every tensor's presence and shape is still checked.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError
from ..models.flownet2_sd import FlowNet2SD
from ..weights import check_state_dict
from .canonical import CONVERTER_VERSION, sha256_file, write_canonical

CHECKPOINT_KEYS = {"epoch", "state_dict", "best_EPE", "arch"}


def read_nvidia_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an NVIDIA flownet2-pytorch checkpoint, loaded without unpickling code."""
    if not os.path.isfile(path):
        raise FormatError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unpickling refused"
        raise FormatError(
            f"{path}: refusing to load: it holds a pickled object other than tensors and plain containers "
            f"(torch.load weights_only=True said: {first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise FormatError(f"{path}: not a readable PyTorch checkpoint ({str(error).splitlines()[0]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise FormatError(f"{path}: expected a dict with a 'state_dict' entry (NVIDIA's checkpoint layout)")
    state = checkpoint["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FormatError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    return dict(state)


def convert(source: str | os.PathLike, out: str | os.PathLike, use_moving_averages: bool = False) -> Path:
    """Convert ``FlowNet2-SD_checkpoint.pth.tar`` to ``out``."""
    if use_moving_averages:
        raise FormatError("FlowNet2-SD checkpoints hold no moving averages")
    state = read_nvidia_checkpoint(source)
    check_state_dict(FlowNet2SD().state_dict(), state, source)
    for name, tensor in state.items():
        if tensor.dtype != torch.float32:
            raise FormatError(f"{source}: tensor {name} is {tensor.dtype}, expected float32")
    tensors = {name: np.asarray(tensor.numpy()) for name, tensor in state.items()}
    metadata = {
        "model": "flownet2_sd",
        "source_file": os.path.basename(source),
        "source_sha256": sha256_file(source),
        "converter_version": CONVERTER_VERSION,
        "variables": "state_dict",
        "format": "pt",
    }
    return write_canonical(tensors, out, metadata)
