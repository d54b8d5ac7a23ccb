"""The one converted artifact: a canonical ``.safetensors`` file.

Canonical means PyTorch ``state_dict`` names and layouts, float32. Writing is
deterministic (same tensors and metadata give the same bytes) and atomic (a
temporary file in the destination folder, renamed when complete).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from ..errors import ArgumentError
from ..fileio import atomic_output

if TYPE_CHECKING:  # pragma: no cover
    import torch

CONVERTER_VERSION = "1"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def expected_shapes(model_class: Callable[[], "torch.nn.Module"]) -> dict[str, tuple[int, ...]]:
    """The canonical tensor names and shapes of a model, built on the meta device (no weights allocated)."""
    import torch

    with torch.device("meta"):
        model = model_class()
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def write_canonical(tensors: Mapping[str, np.ndarray], out: str | os.PathLike, metadata: Mapping[str, str]) -> Path:
    """Write ``tensors`` (as float32) and string ``metadata`` to ``out``, atomically and deterministically.

    Format (huggingface/safetensors): an 8-byte little-endian header length, a
    JSON header ``{name: {dtype, shape, data_offsets}, "__metadata__": {...}}``
    padded with spaces to a multiple of 8, then the tensors' bytes back to back.
    The safetensors library keeps metadata in a hash map whose order varies
    between calls, so the header is written here with sorted keys. Tensors are
    streamed to the file one by one, so no second copy of the model is held.
    """
    check_output_path(out)
    names = sorted(tensors)
    header: dict[str, object] = {"__metadata__": {key: str(metadata[key]) for key in sorted(metadata)}}
    offset = 0
    for name in names:
        size = int(np.prod(np.shape(tensors[name]), dtype=np.int64)) * 4
        header[name] = {"dtype": "F32", "shape": list(np.shape(tensors[name])), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    encoded += b" " * (-len(encoded) % 8)
    try:
        with atomic_output(out) as f:
            f.write(struct.pack("<Q", len(encoded)) + encoded)
            for name in names:
                f.write(memoryview(np.ascontiguousarray(tensors[name], dtype="<f4")).cast("B"))
    except OSError as error:
        raise ArgumentError(f"{out}: cannot write the converted file ({error.strerror or error})") from None
    return Path(out)


def check_output_path(out: str | os.PathLike) -> None:
    """Refuse an output path that is a folder (or sits under a file), before any work is done."""
    path = Path(out)
    if path.is_dir():
        raise ArgumentError(f"{out}: is a folder; give the path of the .safetensors file to write")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ArgumentError(f"{out}: cannot write there: {parent} is a file, not a folder")
            break
