"""Every weight layout rule between PyTorch and TensorFlow/Keras, both directions.

Model code and converters call these; nobody transposes a weight inline.

=================  ===================  ======================
kind               PyTorch              TensorFlow / Keras
=================  ===================  ======================
``CONV``           ``(O, I/g, kh, kw)``  ``(kh, kw, I/g, O)``
``DEPTHWISE``      ``(C*m, 1, kh, kw)``  ``(kh, kw, C, m)``
``CONV_TRANSPOSE`` ``(I, O, kh, kw)``    ``(kh, kw, O, I)``
``DENSE``          ``(out, in)``         ``(in, out)``
``VECTOR``         ``(n,)``              ``(n,)`` (biases, BN)
=================  ===================  ======================

PyTorch's depthwise output channel ``c * m + j`` is TF's ``(c, j)``. Both
frameworks' transposed convolutions are the input-gradient of a correlation,
so no spatial flip is needed, only the axis order.
"""

from __future__ import annotations

import enum

import numpy as np

from .errors import TensorShapeError

# PyTorch BatchNorm parameter and buffer names -> Keras BatchNormalization
# weight names (TF checkpoints use the same names under the layer's scope).
BATCHNORM_TORCH_TO_TF: dict[str, str] = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
BATCHNORM_TF_TO_TORCH: dict[str, str] = {v: k for k, v in BATCHNORM_TORCH_TO_TF.items()}


class Layout(enum.Enum):
    """The kind of a weight tensor, which decides its layout rule."""

    CONV = "conv"
    DEPTHWISE = "depthwise"
    CONV_TRANSPOSE = "conv_transpose"
    DENSE = "dense"
    VECTOR = "vector"


_RANK = {
    Layout.CONV: 4,
    Layout.DEPTHWISE: 4,
    Layout.CONV_TRANSPOSE: 4,
    Layout.DENSE: 2,
    Layout.VECTOR: 1,
}


def _check_rank(array: np.ndarray, layout: Layout, framework: str) -> None:
    if array.ndim != _RANK[layout]:
        raise TensorShapeError(
            f"a {layout.value} weight in {framework} layout must be {_RANK[layout]}-D, got shape {tuple(array.shape)}"
        )


def torch_to_tf(layout: Layout, array: np.ndarray, channel_multiplier: int = 1) -> np.ndarray:
    """Convert a PyTorch-layout weight to the TF/Keras layout (a new contiguous array).

    ``channel_multiplier`` is needed only for ``DEPTHWISE``: PyTorch's
    ``(C*m, 1, kh, kw)`` does not say how ``C*m`` splits.
    """
    array = np.asarray(array)
    _check_rank(array, layout, "PyTorch")
    if layout in (Layout.CONV, Layout.CONV_TRANSPOSE):
        # (O, I, kh, kw) -> (kh, kw, I, O); (I, O, kh, kw) -> (kh, kw, O, I).
        out = array.transpose(2, 3, 1, 0)
    elif layout is Layout.DEPTHWISE:
        channels_out, one, kh, kw = array.shape
        if one != 1 or channels_out % channel_multiplier:
            raise TensorShapeError(
                f"a depthwise weight in PyTorch layout must be (C*{channel_multiplier}, 1, kh, kw), "
                f"got shape {tuple(array.shape)}"
            )
        out = array.reshape(channels_out // channel_multiplier, channel_multiplier, kh, kw).transpose(2, 3, 0, 1)
    elif layout is Layout.DENSE:
        out = array.T
    else:
        out = array
    return np.ascontiguousarray(out)


def tf_to_torch(layout: Layout, array: np.ndarray) -> np.ndarray:
    """Convert a TF/Keras-layout weight to the PyTorch layout (a new contiguous array)."""
    array = np.asarray(array)
    _check_rank(array, layout, "TF/Keras")
    if layout in (Layout.CONV, Layout.CONV_TRANSPOSE):
        # (kh, kw, I, O) -> (O, I, kh, kw); (kh, kw, O, I) -> (I, O, kh, kw).
        out = array.transpose(3, 2, 0, 1)
    elif layout is Layout.DEPTHWISE:
        kh, kw, channels, multiplier = array.shape
        out = array.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
    elif layout is Layout.DENSE:
        out = array.T
    else:
        out = array
    return np.ascontiguousarray(out)


def torch_to_tf_shape(layout: Layout, shape: tuple[int, ...], channel_multiplier: int = 1) -> tuple[int, ...]:
    """The TF/Keras shape of a weight of PyTorch ``shape``: :func:`torch_to_tf`'s rule, on shapes only."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != _RANK[layout]:
        raise TensorShapeError(
            f"a {layout.value} weight in PyTorch layout must be {_RANK[layout]}-D, got shape {shape}"
        )
    if layout in (Layout.CONV, Layout.CONV_TRANSPOSE):
        return (shape[2], shape[3], shape[1], shape[0])
    if layout is Layout.DEPTHWISE:
        channels_out, one, kh, kw = shape
        if one != 1 or channels_out % channel_multiplier:
            raise TensorShapeError(
                f"a depthwise weight in PyTorch layout must be (C*{channel_multiplier}, 1, kh, kw), got shape {shape}"
            )
        return (kh, kw, channels_out // channel_multiplier, channel_multiplier)
    if layout is Layout.DENSE:
        return (shape[1], shape[0])
    return shape
