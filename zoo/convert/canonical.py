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
from typing import Mapping

import numpy as np

from ..fileio import atomic_write_bytes

CONVERTER_VERSION = "1"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def serialize_safetensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The safetensors encoding of float32 ``tensors``, byte-for-byte deterministic.

    Format (huggingface/safetensors): an 8-byte little-endian header length, a
    JSON header ``{name: {dtype, shape, data_offsets}, "__metadata__": {...}}``
    padded with spaces to a multiple of 8, then the tensors' bytes back to back.
    The safetensors library keeps metadata in a hash map whose order varies
    between calls, so the header is written here with sorted keys.
    """
    header: dict[str, object] = {"__metadata__": {key: str(metadata[key]) for key in sorted(metadata)}}
    chunks, offset = [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(tensors[name])), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks)


def write_canonical(tensors: Mapping[str, np.ndarray], out: str | os.PathLike, metadata: Mapping[str, str]) -> Path:
    """Write ``tensors`` (as float32) and string ``metadata`` to ``out`` atomically and deterministically."""
    return atomic_write_bytes(out, serialize_safetensors(tensors, metadata))
