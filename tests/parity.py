"""Helpers shared by the model parity tests (not tests themselves)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# fp32 parity on logits: max |diff| <= 1e-4, relative to the logits' scale where it exceeds 10.
LOGIT_TOL = 1e-4
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def require_module(name: str):
    """Import ``name``, or skip (fail under ZOO_REQUIRE_ALL=1, as in CI, so no reference is silently missing)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        if os.environ.get("ZOO_REQUIRE_ALL") == "1":
            pytest.fail(f"{name} is required when ZOO_REQUIRE_ALL=1: {error}")
        pytest.skip(f"{name} is not installed", allow_module_level=True)


def shared_dir() -> Path | None:
    """The shared/ folder beside the project (ZOO_DATA_DIR points at its data/), or None."""
    data = os.environ.get("ZOO_DATA_DIR")
    candidates = ([Path(data).parent] if data else []) + [ROOT.parent / "shared"]
    return next((p for p in candidates if (p / "data").is_dir()), None)


def require_shared() -> Path:
    """shared/, or skip (fail under ZOO_REQUIRE_ALL=1, as in CI)."""
    path = shared_dir()
    if path is None:
        if os.environ.get("ZOO_REQUIRE_ALL") == "1":
            pytest.fail("../shared is required when ZOO_REQUIRE_ALL=1")
        pytest.skip("../shared is not present")
    return path


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


def assert_logits_match(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    """max |diff| <= 1e-4 (relative beyond logits of 10) and the same top-1 everywhere."""
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()) / 10)
    diff = float(np.abs(ours - ref).max())
    assert diff <= LOGIT_TOL * scale, f"{what}: max |logit diff| {diff:.3g} > {LOGIT_TOL * scale:.3g}"
    np.testing.assert_array_equal(ours.argmax(1), ref.argmax(1), err_msg=f"{what}: top-1 differs")
