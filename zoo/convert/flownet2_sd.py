"""FlowNet2-SD -> canonical weights, from NVIDIA's checkpoint or lmb-freiburg's Caffe weights.

NVIDIA ``FlowNet2-SD_checkpoint.pth.tar`` is ``torch.save({'epoch',
'state_dict', 'best_EPE'})`` (training checkpoints add ``'arch'``). It is read
with ``torch.load(weights_only=True)``: a file that needs anything beyond
tensors and plain containers to unpickle is refused, never executed. The
canonical names are NVIDIA's own, so that name map is the identity
(:data:`zoo.specs.flownet2_sd.TABLE`, the model's one name table, also
gives each tensor's Caffe blob and Keras weight).

lmb-freiburg ``FlowNet2-SD_weights.caffemodel.h5`` (in
``flownet2-models.tar.gz``; the route when the Google Drive link is dead) holds
``data/<layer>/0`` weights and ``data/<layer>/1`` biases under Caffe layer
names, in PyTorch's layouts, with conv0 reading BGR frames. Every tensor's
presence and shape is checked on both routes.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError
from ..models.flownet2_sd import FlowNet2SD
from ..specs.flownet2_sd import (  # noqa: F401  (upstream facts, re-exported)
    CAFFE_BLOBS,
    CAFFE_H5_NAME,
    CHECKPOINT_KEYS,
    CHECKPOINT_NAME,
    CONV0_BGR_TO_RGB,
    CONV0_WEIGHT,
    TABLE,
)
from ..weights import check_state_dict
from .canonical import CONVERTER_VERSION, sha256_file, write_canonical


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


def _caffe_layers() -> dict[str, list]:
    """Caffe layer -> [(blob, NVIDIA key)], from the name table (``CAFFE_BLOBS``)."""
    layers: dict[str, list] = {}
    for spec in TABLE:
        layer, blob = CAFFE_BLOBS[spec.torch]
        layers.setdefault(layer, []).append((blob, spec.torch))
    return layers


def read_caffe_h5(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """NVIDIA-named state_dict from lmb-freiburg's ``.caffemodel.h5`` (conv0 turned from BGR to RGB)."""
    try:
        import h5py
    except ImportError:
        raise FormatError("reading a .caffemodel.h5 needs h5py (pip install h5py)") from None
    if not os.path.isfile(path):
        raise FormatError(f"Caffe weights not found: {path}")
    table = _caffe_layers()
    state: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(path, "r") as h5:
            if "data" not in h5:
                raise FormatError(f"{path}: no 'data' group (expected Caffe's data/<layer>/0 and /1)")
            for layer, group in h5["data"].items():
                if layer not in table:
                    if len(group):
                        raise FormatError(f"{path}: unexpected Caffe layer {layer} with weights")
                    continue
                for blob, key in table[layer]:
                    if blob not in group:
                        raise FormatError(f"{path}: Caffe layer {layer} lacks blob {blob} ({key})")
                    state[key] = torch.from_numpy(np.asarray(group[blob], dtype=np.float32))
    except OSError as error:
        raise FormatError(f"{path}: not a readable HDF5 file ({error})") from None
    if CONV0_WEIGHT in state and state[CONV0_WEIGHT].shape[1] == len(CONV0_BGR_TO_RGB):
        # Caffe's conv0 reads each frame as BGR; NVIDIA's reads RGB (channels B0 G0 R0 B1 G1 R1 -> R0 G0 B0 R1 G1 B1).
        state[CONV0_WEIGHT] = state[CONV0_WEIGHT][:, list(CONV0_BGR_TO_RGB)].contiguous()
    return state


def convert(source: str | os.PathLike, out: str | os.PathLike, use_moving_averages: bool = False) -> Path:
    """Convert ``FlowNet2-SD_checkpoint.pth.tar`` (or the Caffe ``.caffemodel.h5``) to ``out``."""
    if use_moving_averages:
        raise FormatError("FlowNet2-SD checkpoints hold no moving averages")
    caffe = str(source).endswith(".h5")
    state = read_caffe_h5(source) if caffe else read_nvidia_checkpoint(source)
    with torch.device("meta"):
        expected = FlowNet2SD().state_dict()
    check_state_dict(expected, state, source)
    for name, tensor in state.items():
        if tensor.dtype != torch.float32:
            raise FormatError(f"{source}: tensor {name} is {tensor.dtype}, expected float32")
    tensors = {name: np.asarray(tensor.numpy()) for name, tensor in state.items()}
    metadata = {
        "model": "flownet2_sd",
        "source_file": os.path.basename(source),
        "source_sha256": sha256_file(source),
        "converter_version": CONVERTER_VERSION,
        "variables": "Caffe blobs (conv0 BGR -> RGB)" if caffe else "state_dict",
        "format": "pt",
    }
    return write_canonical(tensors, out, metadata)
