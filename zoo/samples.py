"""Real inputs for the demo and the benchmarks, from the photos bundled with scikit-image.

A registry entry names one of these as its ``demo_inputs``; each returns a
batch in the entry's Keras layout (channels last), ready for the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .registry import ModelEntry

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def photos_bgr() -> list[np.ndarray]:
    """scikit-image's four real photos as ``cv2.imread`` gives images (BGR uint8), as MLPerf's preprocessing takes them."""
    import skimage.data

    return [np.ascontiguousarray(getattr(skimage.data, name)()[..., ::-1]) for name in PHOTOS]


def skimage_photos(entry: "ModelEntry") -> np.ndarray:
    """The four photos through ``entry``'s preprocessing: (4, H, W, C) float32."""
    preprocess = entry.load("preprocessing")
    return np.stack([preprocess(image) for image in photos_bgr()]).astype(np.float32)


def stereo_motorcycle_pair(entry: "ModelEntry") -> np.ndarray:
    """scikit-image's stereo_motorcycle pair, cropped to ``entry``'s default size: (1, 2, H, W, 3) float32 RGB 0..255."""
    import skimage.data

    left, right, _ = skimage.data.stereo_motorcycle()  # two 500x741 RGB frames
    height, width = entry.input.default_size
    top, left_edge = (left.shape[0] - height) // 2, (left.shape[1] - width) // 2
    crop = (slice(top, top + height), slice(left_edge, left_edge + width))
    return np.stack([left[crop], right[crop]]).astype(np.float32)[None]
