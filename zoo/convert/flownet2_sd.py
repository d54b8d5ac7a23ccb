"""FlowNet2-SD -> canonical weights, from NVIDIA's checkpoint or lmb-freiburg's Caffe weights.

NVIDIA ``FlowNet2-SD_checkpoint.pth.tar`` is ``torch.save({'epoch',
'state_dict', 'best_EPE'})`` (training checkpoints add ``'arch'``). It is read
with ``torch.load(weights_only=True)``: a file that needs anything beyond
tensors and plain containers to unpickle is refused, never executed. The
canonical names are NVIDIA's own, so that name map is the identity.

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
from ..models.flownet2_sd import ENCODER, FlowNet2SD
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


def _caffe_name_map() -> dict[str, str]:
    """Caffe layer -> NVIDIA module. Convolution1..5 are predict_flow6..2,
    interconv5..2 are inter_conv5..2, upsample_flow6to5..3to2 are
    upsampled_flow6_to_5..3_to_2; the rest keep their names."""
    table = {name: f"{name}.0" for name, *_ in ENCODER}
    table.update({f"deconv{level}": f"deconv{level}.0" for level in (5, 4, 3, 2)})
    table.update({f"interconv{level}": f"inter_conv{level}.0" for level in (5, 4, 3, 2)})
    table.update({f"Convolution{index}": f"predict_flow{7 - index}" for index in range(1, 6)})
    table.update({f"upsample_flow{level}to{level - 1}": f"upsampled_flow{level}_to_{level - 1}" for level in (6, 5, 4, 3)})
    return table


def read_caffe_h5(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """NVIDIA-named state_dict from lmb-freiburg's ``.caffemodel.h5`` (conv0 turned from BGR to RGB)."""
    try:
        import h5py
    except ImportError:
        raise FormatError("reading a .caffemodel.h5 needs h5py (pip install h5py)") from None
    if not os.path.isfile(path):
        raise FormatError(f"Caffe weights not found: {path}")
    table = _caffe_name_map()
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
                for blob, suffix in (("0", "weight"), ("1", "bias")):
                    if blob not in group:
                        raise FormatError(f"{path}: Caffe layer {layer} lacks blob {blob} ({suffix})")
                    state[f"{table[layer]}.{suffix}"] = torch.from_numpy(np.asarray(group[blob], dtype=np.float32))
    except OSError as error:
        raise FormatError(f"{path}: not a readable HDF5 file ({error})") from None
    if "conv0.0.weight" in state and state["conv0.0.weight"].shape[1] == 6:
        # Caffe's conv0 reads each frame as BGR; NVIDIA's reads RGB (channels B0 G0 R0 B1 G1 R1 -> R0 G0 B0 R1 G1 B1).
        state["conv0.0.weight"] = state["conv0.0.weight"][:, [2, 1, 0, 5, 4, 3]].contiguous()
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
