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
presence and shape is checked against the name table on both routes.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError, TensorShapeError
from ..specs.flownet2_sd import (  # noqa: F401  (upstream facts, re-exported)
    CAFFE_BLOBS,
    CAFFE_H5_NAME,
    CHECKPOINT_KEYS,
    CHECKPOINT_NAME,
    CONV0_BGR_TO_RGB,
    CONV0_WEIGHT,
    TABLE,
)
from ..specs.common import torch_shapes
from .canonical import CONVERTER_VERSION, check_names_and_shapes, sha256_file, write_canonical
from .limits import max_tensor_bytes
from .torch_checkpoint import check_checkpoint_file


def _torch_detail(error: BaseException) -> str:
    """The part of torch.load's message that says what was wrong, without its advice to load unsafely."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip()
    lines = [line for line in lines if "weights_only" not in line and "trust the source" not in line]
    return lines[0] if lines else type(error).__name__


def _max_tensor_bytes() -> int:
    return max_tensor_bytes(spec.upstream_shape for spec in TABLE)


def read_nvidia_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of an NVIDIA flownet2-pytorch checkpoint, loaded without unpickling code.

    The file's format and every size it declares are checked first
    (:func:`zoo.convert.torch_checkpoint.check_checkpoint_file`), so nothing is
    allocated on a declared size alone; whatever torch.load still finds wrong is
    a :class:`FormatError` naming the file.
    """
    if not os.path.isfile(path):
        raise FormatError(f"checkpoint not found: {path}" + (" (it is a folder)" if os.path.isdir(path) else ""))
    check_checkpoint_file(path, _max_tensor_bytes())
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _torch_detail(error)
        if detail.startswith(("Unsupported global", "Unsupported class", "Trying to", "Unsupported operand")):
            raise FormatError(
                f"{path}: refusing to load: it holds a pickled object other than tensors and plain containers "
                f"({detail})"
            ) from None
        raise FormatError(f"{path}: truncated or corrupt PyTorch checkpoint ({detail})") from None
    except MemoryError:
        raise FormatError(f"{path}: corrupt PyTorch checkpoint (it declares more memory than it can hold)") from None
    except Exception as error:  # torch.load is the reader of an untrusted file: any failure is the file's
        raise FormatError(f"{path}: not a readable PyTorch checkpoint ({_torch_detail(error)})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise FormatError(f"{path}: expected a dict with a 'state_dict' entry (NVIDIA's checkpoint layout)")
    state = checkpoint["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FormatError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    if not all(isinstance(k, str) for k in state):
        raise FormatError(f"{path}: 'state_dict' has a key that is not a name")
    return dict(state)


def _caffe_layers() -> dict[str, list]:
    """Caffe layer -> [(blob, NVIDIA key)], from the name table (``CAFFE_BLOBS``)."""
    layers: dict[str, list] = {}
    for spec in TABLE:
        layer, blob = CAFFE_BLOBS[spec.torch]
        layers.setdefault(layer, []).append((blob, spec.torch))
    return layers


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _h5_kind(item: object) -> str:
    return "missing or unreadable object" if item is None else type(item).__name__.lower()


def _read_blob(item: object, name: str, shape: tuple[int, ...], file_size: int, path: str | os.PathLike) -> torch.Tensor:
    """One Caffe blob, its kind, dtype, shape and size checked before a byte of it is read."""
    import h5py

    if not isinstance(item, h5py.Dataset):
        raise FormatError(f"{path}: {name} is a {_h5_kind(item)}, expected a dataset of shape {shape}")
    if item.dtype.kind != "f" or item.dtype.itemsize not in (2, 4, 8):
        raise FormatError(f"{path}: {name} holds {item.dtype}, expected float32")
    declared = tuple(item.shape) if item.shape is not None else None
    if declared != shape:
        raise TensorShapeError(f"{path}: {name} has shape {declared}, expected {shape}")
    nbytes = math.prod(declared) * item.dtype.itemsize
    if nbytes > max_tensor_bytes([shape], itemsize=8):
        raise FormatError(f"{path}: {name} declares {nbytes} bytes, more than expected for shape {shape}")
    if item.compression is None and nbytes > file_size:
        raise FormatError(f"{path}: truncated or corrupt: {name} declares {nbytes} bytes, the file has {file_size}")
    return torch.from_numpy(np.asarray(item[()], dtype=np.float32))


def read_caffe_h5(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """NVIDIA-named state_dict from lmb-freiburg's ``.caffemodel.h5`` (conv0 turned from BGR to RGB)."""
    try:
        import h5py
    except ImportError:
        raise FormatError("reading a .caffemodel.h5 needs h5py (pip install h5py)") from None
    if not os.path.isfile(path):
        raise FormatError(f"Caffe weights not found: {path}")
    table = _caffe_layers()
    shapes = {spec.torch: tuple(spec.upstream_shape) for spec in TABLE}
    file_size = os.path.getsize(path)
    state: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(path, "r") as h5:
            data = h5.get("data")
            if data is None:
                raise FormatError(f"{path}: no 'data' group (expected Caffe's data/<layer>/0 and /1)")
            if not isinstance(data, h5py.Group):
                raise FormatError(f"{path}: 'data' is a {_h5_kind(data)}, expected a group of Caffe layers")
            for layer in list(data.keys()):
                group = data.get(layer)
                if not isinstance(group, h5py.Group):
                    raise FormatError(f"{path}: data/{layer} is a {_h5_kind(group)}, expected a group of Caffe blobs")
                if layer not in table:
                    if len(group):
                        raise FormatError(f"{path}: unexpected Caffe layer {layer} with weights")
                    continue
                for blob, key in table[layer]:
                    if blob not in group:
                        raise FormatError(f"{path}: Caffe layer {layer} lacks blob {blob} ({key})")
                    state[key] = _read_blob(group.get(blob), f"data/{layer}/{blob}", shapes[key], file_size, path)
    except OSError as error:
        raise FormatError(f"{path}: not a readable HDF5 file ({_first_line(error)})") from None
    except FormatError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise FormatError(f"{path}: corrupt HDF5 file ({_first_line(error)})") from None
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
    check_names_and_shapes(torch_shapes(TABLE), state, source)
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
