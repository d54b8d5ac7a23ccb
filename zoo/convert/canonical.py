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
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ArgumentError, FormatError, TensorShapeError
from ..fileio import atomic_output

CONVERTER_VERSION = "1"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_names_and_shapes(
    expected: Mapping[str, Sequence[int]],
    found: Mapping[str, Any],
    source: str | os.PathLike,
    optional_suffixes: tuple[str, ...] = (),
) -> None:
    """Raise naming the tensor if ``found`` (name -> tensor or array) lacks, adds or mis-shapes one of ``expected``.

    ``expected`` maps each canonical name to its shape (a model's ``state_dict``
    shapes, or a name table's :func:`zoo.specs.common.torch_shapes`). Names
    ending with one of ``optional_suffixes`` (buffers that carry no upstream
    weight, such as ``num_batches_tracked``) may be absent and are not checked.
    """
    needed = {k for k in expected if not (optional_suffixes and k.endswith(optional_suffixes))}
    missing = sorted(needed - found.keys())
    unexpected = sorted(k for k in found.keys() - expected.keys())
    if missing:
        raise FormatError(f"{source}: missing tensor(s) {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        raise FormatError(f"{source}: unexpected tensor(s) {', '.join(unexpected[:5])}")
    for name in sorted(needed):
        want, got = tuple(int(n) for n in expected[name]), tuple(found[name].shape)
        if want != got:
            raise TensorShapeError(f"{source}: tensor {name} has shape {got}, the model needs {want}")


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
