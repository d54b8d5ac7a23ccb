"""Helpers shared by the model parity tests (not tests themselves)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.registry import get_model_entry

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def require_module(name: str):
    """Import ``name``, or skip (conftest turns the skip into a failure under ZOO_REQUIRE_ALL=1)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        pytest.skip(f"{name} is not installed ({error})", allow_module_level=True)


def shared_dir() -> Path | None:
    """The shared/ folder: ZOO_DATA_DIR's parent when set (it points at shared/data), else ../shared, else None.

    A user's clone has no shared/; tests size themselves from what they find.
    """
    data = os.environ.get("ZOO_DATA_DIR")
    candidate = Path(data).parent if data else ROOT.parent / "shared"
    return candidate if (candidate / "data").is_dir() else None


def require_shared(*parts: str) -> Path:
    """shared/ (or the path ``parts`` below it), or skip (a failure under ZOO_REQUIRE_ALL=1, see conftest)."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is not present (set ZOO_DATA_DIR to its data/ folder)")
    target = path.joinpath(*parts)
    if not target.exists():
        pytest.skip(f"{target} is not present")
    return target


def load_script(name: str):
    """scripts/<name>.py as a module (its main(argv) runs in this process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def skimage_photos_bgr() -> list[np.ndarray]:
    """The bundled real photos, as cv2.imread would give them (BGR uint8)."""
    skimage_data = pytest.importorskip("skimage.data")
    return [np.ascontiguousarray(getattr(skimage_data, name)()[..., ::-1]) for name in PHOTOS]


def imagenet_val_bgr(shared: Path) -> list[np.ndarray]:
    """The 115 real ILSVRC2012 validation images in shared/, read with cv2 (BGR)."""
    import cv2

    files = sorted((shared / "data" / "imagenet" / "val").glob("*.JPEG"))
    assert len(files) == 115, f"expected 115 validation images, found {len(files)}"
    return [cv2.imread(str(f)) for f in files]


def torch_logits(model: torch.nn.Module, images_nhwc: np.ndarray, batch: int = 32) -> np.ndarray:
    """Run a PyTorch port on NHWC images (transposed to NCHW), in batches."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images_nhwc), batch):
            chunk = np.ascontiguousarray(images_nhwc[start : start + batch].transpose(0, 3, 1, 2))
            outputs.append(model(torch.from_numpy(chunk)).numpy())
    return np.concatenate(outputs)


def torch_forward(model: str, module: torch.nn.Module, batch_keras: np.ndarray) -> np.ndarray:
    """``model``'s PyTorch port run on a batch in the Keras layout; the output in the Keras layout too."""
    x = get_model_entry(model).input.convert_layout(batch_keras, "keras", "torch")
    with torch.no_grad():
        out = module(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    # Logits are (B, classes) in both frameworks; a map (e.g. flow) is channels-first in PyTorch only.
    return out if out.ndim == 2 else out.transpose(0, *range(2, out.ndim), 1)


def assert_matches_reference(model: str, ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    """``model``'s parity bar from its registry entry (``entry.tolerance``); a classifier also keeps every top-1."""
    entry = get_model_entry(model)
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    bound, diff = entry.tolerance.bound(ref), entry.tolerance.max_diff(ours, ref)
    assert diff <= bound, f"{what}: max |diff| {diff:.3g} > {bound:.3g} (bar: {entry.tolerance.describe()})"
    if entry.is_classifier:
        np.testing.assert_array_equal(ours.argmax(1), ref.argmax(1), err_msg=f"{what}: top-1 differs")


def small_valid_size(model: str, at_least: int = 32) -> tuple[int, int]:
    """The smallest square size of at least ``at_least`` that ``model`` takes (its minimum, rounded up to its multiple)."""
    spec = get_model_entry(model).input
    side = max(spec.min_size, spec.size_multiple, at_least)
    side = -(-side // spec.size_multiple) * spec.size_multiple
    spec.check_size(side, side)
    return side, side


def assert_convert_fails(model: str, source: Path, out: Path, error: type, match: str, **kwargs) -> None:
    """``model``'s converter refuses ``source`` with ``error`` matching ``match``, leaving no output or temporary file."""
    convert = get_model_entry(model).load("converter")
    with pytest.raises(error, match=match):
        convert(source, out, **kwargs)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")], "a temporary file was left"
