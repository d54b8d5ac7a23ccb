"""Optical-flow tools: Middlebury ``.flo`` I/O, end-point error, and the Middlebury colour coding.

* ``.flo`` (Middlebury ``flow_io.cpp``, also used by FlyingChairs and
  MPI-Sintel): the tag ``"PIEH"`` (the little-endian float 202021.25), int32
  width, int32 height, then ``height * width * 2`` little-endian float32, u and
  v interleaved, rows top to bottom.
* End-point error: ``sqrt((u - u_gt)^2 + (v - v_gt)^2)`` averaged over all
  pixels (as NVIDIA flownet2-pytorch's ``losses.EPE``) or over the valid ones
  (Sintel's ``invalid.png`` left out), the measure FlowNet 2 reports on
  FlyingChairs and Sintel.
* Colour coding: Baker et al., "A Database and Evaluation Methodology for
  Optical Flow" (2007), as Middlebury's ``colorcode.cpp`` / ``computeColor.m``
  define it and ``flow_vis`` reproduces it.

Reading and writing images (Sintel's ``invalid.png``, flow PNGs) needs OpenCV
(``opencv-python-headless``); everything else needs only NumPy.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from .errors import ArgumentError, FormatError, InputShapeError, MissingFileError
from .fileio import atomic_write_bytes

__all__ = [
    "average_epe",
    "flow_to_color",
    "read_flo",
    "read_sintel_invalid",
    "save_flow_png",
    "write_flo",
]

# flow_io.cpp: "PIEH" in ASCII, which read as a little-endian float is 202021.25.
FLO_MAGIC = 202021.25
# Tag, int32 width, int32 height.
_FLO_HEADER = struct.Struct("<fii")
# Beyond any real image; guards against reading garbage as a size.
FLO_MAX_SIDE = 100_000
# flowIO.h: "if the absolute value of either flow component is greater, it's considered unknown".
UNKNOWN_FLOW_THRESH = 1e9

# colorcode.cpp: relative lengths of the colour transitions, "chosen based on
# perceptual similarity" (red-yellow, yellow-green, green-cyan, cyan-blue,
# blue-magenta, magenta-red); 55 hues in all.
_WHEEL_SEGMENTS = (15, 6, 4, 11, 13, 6)


def _check_flow_shape(flow: np.ndarray, what: str) -> None:
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise InputShapeError(f"{what} must have shape (H, W, 2), got {flow.shape}")
    if flow.shape[0] < 1 or flow.shape[1] < 1:
        raise InputShapeError(f"{what} is empty: shape {flow.shape}")


def _check_real_dtype(flow: np.ndarray, what: str) -> None:
    if not (np.issubdtype(flow.dtype, np.floating) or np.issubdtype(flow.dtype, np.integer)):
        raise InputShapeError(f"{what} must hold real numbers, got dtype {flow.dtype}")


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file into a float32 array of shape (H, W, 2) holding (u, v).

    Raises :class:`~zoo.errors.FormatError`, naming the file, when the tag is
    wrong, the header's width or height is not in 1..100000, or the file is
    not exactly ``12 + W * H * 8`` bytes long, and
    :class:`~zoo.errors.MissingFileError` when there is no such file.
    """
    if not Path(path).is_file():
        raise MissingFileError(f"no such file: {path}")
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        header = file.read(_FLO_HEADER.size)
        if len(header) < _FLO_HEADER.size:
            raise FormatError(
                f"{path}: not a .flo file: {size} bytes, shorter than the {_FLO_HEADER.size}-byte header"
            )
        magic, width, height = _FLO_HEADER.unpack(header)
        if magic != FLO_MAGIC:
            raise FormatError(
                f"{path}: not a .flo file: tag {header[:4]!r} is not b'PIEH' (float {FLO_MAGIC})"
            )
        if not (1 <= width <= FLO_MAX_SIDE and 1 <= height <= FLO_MAX_SIDE):
            raise FormatError(
                f"{path}: corrupt .flo header: width {width}, height {height} (each must be 1..{FLO_MAX_SIDE})"
            )
        expected = _FLO_HEADER.size + width * height * 2 * 4
        if size != expected:
            problem = "truncated" if size < expected else "has trailing bytes"
            raise FormatError(
                f"{path}: .flo file {problem}: {size} bytes, a {width}x{height} flow needs {expected}"
            )
        data = file.read(expected - _FLO_HEADER.size)
    if len(data) != expected - _FLO_HEADER.size:  # the file changed while being read
        raise FormatError(f"{path}: .flo file truncated while reading")
    return np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(height, width, 2)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write ``flow`` (H, W, 2), converted to float32, as a Middlebury ``.flo`` file.

    The file is written under a temporary name in the same folder and renamed
    into place, so ``path`` is never left half-written.
    """
    flow = np.asarray(flow)
    _check_flow_shape(flow, "flow")
    _check_real_dtype(flow, "flow")
    height, width = flow.shape[:2]
    if width > FLO_MAX_SIDE or height > FLO_MAX_SIDE:
        raise InputShapeError(f"flow of {width}x{height} is larger than .flo readers accept ({FLO_MAX_SIDE})")
    header = _FLO_HEADER.pack(FLO_MAGIC, width, height)
    # tobytes() writes C (row-major) order whatever the input's strides.
    atomic_write_bytes(path, header + flow.astype("<f4").tobytes())


def read_sintel_invalid(path: str | os.PathLike) -> np.ndarray:
    """The validity mask (H, W) bool of an MPI-Sintel ``invalid.png``: True where the flow is valid.

    Sintel marks pixels with no valid ground truth with 255 (any nonzero value
    is taken as invalid here).
    """
    cv2 = _import_cv2()
    if not Path(path).is_file():
        raise MissingFileError(f"no such file: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FormatError(f"{path}: not a readable image")
    if image.ndim == 3:
        image = image.any(axis=2)
    return image == 0


def average_epe(flow: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Average end-point error ``sqrt((u - u_gt)^2 + (v - v_gt)^2)`` over the pixels of (H, W, 2) flows.

    With ``valid=None`` every pixel counts: the number NVIDIA flownet2-pytorch
    reports (``losses.EPE``: ``torch.norm(target - output, p=2, dim=1).mean()``,
    no mask). ``valid`` is an optional bool mask (H, W); only pixels where it is
    True count (Sintel's ``invalid.png`` left out, see
    :func:`read_sintel_invalid`). Computed in float64.
    """
    flow = np.asarray(flow)
    gt = np.asarray(gt)
    _check_flow_shape(flow, "flow")
    _check_flow_shape(gt, "ground truth")
    if flow.shape != gt.shape:
        raise InputShapeError(f"flow shape {flow.shape} differs from ground-truth shape {gt.shape}")
    _check_real_dtype(flow, "flow")
    _check_real_dtype(gt, "ground truth")
    error = flow.astype(np.float64) - gt.astype(np.float64)
    end_point_error = np.hypot(error[..., 0], error[..., 1])
    if valid is not None:
        valid = np.asarray(valid)
        if valid.dtype != np.bool_:
            # An invalid.png read raw (255 = invalid) would otherwise pass as a validity mask.
            raise ArgumentError(f"valid must be a bool mask (True = valid), got dtype {valid.dtype}")
        if valid.shape != flow.shape[:2]:
            raise InputShapeError(f"valid mask shape {valid.shape} differs from the flow's {flow.shape[:2]}")
        if not valid.any():
            raise ArgumentError("valid mask marks no pixel valid: the average end-point error is undefined")
        end_point_error = end_point_error[valid]
    return float(end_point_error.mean())


def _color_wheel() -> np.ndarray:
    """The 55 x 3 Middlebury colour wheel (RGB, 0..255), as colorcode.cpp's makecolorwheel builds it."""
    ry, yg, gc, cb, bm, mr = _WHEEL_SEGMENTS
    rows = []
    # Integer division as in the C code: setcols(255, 255*i/RY, 0), ...
    rows += [(255, 255 * i // ry, 0) for i in range(ry)]
    rows += [(255 - 255 * i // yg, 255, 0) for i in range(yg)]
    rows += [(0, 255, 255 * i // gc) for i in range(gc)]
    rows += [(0, 255 - 255 * i // cb, 255) for i in range(cb)]
    rows += [(255 * i // bm, 0, 255) for i in range(bm)]
    rows += [(255, 0, 255 - 255 * i // mr) for i in range(mr)]
    return np.array(rows, dtype=np.float64)


def flow_to_color(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """Colour-code a flow field (H, W, 2) with the Middlebury colour wheel; returns uint8 (H, W, 3) RGB.

    Hue gives the direction, saturation the magnitude normalised by
    ``max_flow`` or, when it is None, by the largest magnitude present. Zero
    flow is white; flow beyond the normalising radius keeps its hue, dimmed to
    75 %. Unknown flow (NaN, or a component above 1e9 in magnitude) is black.
    """
    flow = np.asarray(flow)
    _check_flow_shape(flow, "flow")
    _check_real_dtype(flow, "flow")
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    # flowIO.cpp unknown_flow(): |u| or |v| above UNKNOWN_FLOW_THRESH, or NaN.
    with np.errstate(invalid="ignore"):
        unknown = ~((np.abs(u) <= UNKNOWN_FLOW_THRESH) & (np.abs(v) <= UNKNOWN_FLOW_THRESH))
    u[unknown] = 0.0
    v[unknown] = 0.0
    radius = np.hypot(u, v)
    if max_flow is None:
        scale = float(radius.max())
        if scale == 0.0:  # all zero (or unknown): nothing to normalise, all white
            scale = 1.0
    else:
        scale = float(max_flow)
        if not np.isfinite(scale) or scale <= 0:
            raise ArgumentError(f"max_flow must be a positive number, got {max_flow}")
    # color_flow.cpp: computeColor(fx / maxrad, fy / maxrad, pix).
    u /= scale
    v /= scale
    radius /= scale

    wheel = _color_wheel()
    ncols = len(wheel)
    # computeColor: a = atan2(-fy, -fx) / pi in [-1, 1], mapped onto hues 0..ncols-1
    # (+x flow, a = -1, lands on hue 0, pure red), blending the two nearest hues.
    angle = np.arctan2(-v, -u) / np.pi
    hue = (angle + 1.0) / 2.0 * (ncols - 1)
    k0 = np.floor(hue).astype(np.int64)
    k1 = (k0 + 1) % ncols
    blend = (hue - k0)[..., None]
    # In 0..255 units (the C code's col * 255) so table entries stay exact.
    color = (1.0 - blend) * wheel[k0] + blend * wheel[k1]
    within = (radius <= 1.0)[..., None]
    # "increase saturation with radius" inside the unit circle; "out of range" beyond it: col *= .75.
    color = np.where(within, 255.0 - radius[..., None] * (255.0 - color), color * 0.75)
    # pix[b] = (int)(255.0 * col): truncation.
    image = np.floor(np.clip(color, 0.0, 255.0)).astype(np.uint8)
    image[unknown] = 0
    return image


def save_flow_png(path: str | os.PathLike, flow: np.ndarray, max_flow: float | None = None) -> None:
    """Write :func:`flow_to_color` of ``flow`` as a PNG (BGR on disk, as OpenCV writes), atomically."""
    cv2 = _import_cv2()
    rgb = flow_to_color(flow, max_flow)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the PNG")
    atomic_write_bytes(path, encoded.tobytes())


def _import_cv2():
    try:
        import cv2
    except ImportError as error:
        raise ImportError(
            "reading and writing flow images needs OpenCV: pip install opencv-python-headless"
        ) from error
    return cv2
