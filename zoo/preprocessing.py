"""MLPerf Inference's image preprocessing, restated.

Upstream: mlcommons/inference ``vision/classification_and_detection/python/dataset.py``
(``resize_with_aspectratio`` with scale 87.5, ``center_crop``,
``pre_process_mobilenet``, ``pre_process_vgg``). Input: a BGR uint8 image as
``cv2.imread`` returns it. Output: float32 HWC (or CHW).
"""

from __future__ import annotations

import numpy as np

from .errors import InputShapeError

# pre_process_vgg subtracts these RGB means and does not scale.
VGG_RGB_MEANS = np.array([123.68, 116.78, 103.94], dtype=np.float32)


def _resize_and_crop(image_bgr: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    import cv2

    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise InputShapeError(f"expected an HxWx3 BGR image, got shape {image_bgr.shape}")
    image = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    height, width, _ = image.shape
    # Short side to int(100 * size / 87.5) (256 for 224), long side in proportion.
    short = int(100.0 * size / 87.5)
    if height > width:
        new_w, new_h = short, int(short * height / width)
    else:
        new_h, new_w = short, int(short * width / height)
    image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = int((new_h - size) / 2), int((new_w - size) / 2)
    bottom, right = int((new_h + size) / 2), int((new_w + size) / 2)
    return np.asarray(image[top:bottom, left:right], dtype=np.float32)


def preprocess_mobilenet(image_bgr: np.ndarray, size: int = 224, channels_first: bool = False) -> np.ndarray:
    """MLPerf ``pre_process_mobilenet``: INTER_LINEAR resize, centre crop, ``(x / 255 - 0.5) * 2``."""
    import cv2

    image = _resize_and_crop(image_bgr, size, cv2.INTER_LINEAR)
    image /= 255.0
    image -= 0.5
    image *= 2
    return image.transpose(2, 0, 1) if channels_first else image


def preprocess_vgg(image_bgr: np.ndarray, size: int = 224, channels_first: bool = False) -> np.ndarray:
    """MLPerf ``pre_process_vgg``: INTER_AREA resize, centre crop, RGB means subtracted."""
    import cv2

    image = _resize_and_crop(image_bgr, size, cv2.INTER_AREA)
    image -= VGG_RGB_MEANS
    return image.transpose(2, 0, 1) if channels_first else image
