"""PyTorch semantics in Keras (channels_last), for PyTorch-born models.

Each layer computes what the named PyTorch op computes on the NCHW transpose of
its NHWC input (tested against PyTorch in ``tests/test_keras_layers.py``).
Weights use the Keras layouts; :mod:`zoo.layouts` converts from PyTorch.
"""

from __future__ import annotations

import fractions
import functools
import math
from typing import Any, Sequence

import keras
import numpy as np
from keras import ops

from ..errors import ArgumentError
from ..layers.helpers import IntPair, to_pair  # framework-free (zoo.layers loads its layers lazily)

_PACKAGE = "zoo"


def _channels_last_only(kwargs: dict[str, Any], layer: str) -> None:
    data_format = kwargs.pop("data_format", "channels_last")
    if data_format != "channels_last":
        raise ArgumentError(f"{layer} supports data_format='channels_last' only, got {data_format!r}")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TorchConv2D(keras.layers.Conv2D):
    """``nn.Conv2d(..., padding=p)``: zero padding of ``p`` on both sides, any stride.

    Keras's ``"same"`` pads asymmetrically at stride 2 and so is not PyTorch's
    ``padding=1``. It is used only where the two coincide (stride 1 and
    ``2p == d * (k - 1)``); otherwise the input is padded explicitly and
    convolved ``"valid"``. Kernel layout ``(kh, kw, I, O)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: IntPair = 0,
        dilation_rate: IntPair = 1,
        use_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        _channels_last_only(kwargs, type(self).__name__)
        kernel = to_pair(kernel_size, "kernel_size")
        stride = to_pair(strides, "strides")
        pad = to_pair(padding, "padding", minimum=0)
        dilation = to_pair(dilation_rate, "dilation_rate")
        if filters < 1:
            raise ArgumentError(f"filters must be >= 1, got {filters}")
        keras_same = all(s == 1 and 2 * p == d * (k - 1) for k, s, p, d in zip(kernel, stride, pad, dilation))
        super().__init__(
            filters,
            kernel,
            strides=stride,
            padding="same" if keras_same else "valid",
            dilation_rate=dilation,
            use_bias=use_bias,
            **kwargs,
        )
        self.torch_padding = pad
        self._explicit_pad = None if keras_same or pad == (0, 0) else pad

    def call(self, inputs):
        if self._explicit_pad is not None:
            ph, pw = self._explicit_pad
            inputs = ops.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        return super().call(inputs)

    def compute_output_shape(self, input_shape):
        if self._explicit_pad is not None:
            input_shape = _padded_shape(input_shape, self._explicit_pad)
        return super().compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["padding"] = self.torch_padding
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TorchConv2DTranspose(keras.layers.Conv2DTranspose):
    """``nn.ConvTranspose2d(I, O, k, stride, padding=p)``: output ``(n - 1) * s - 2p + k``.

    PyTorch's ``padding`` removes ``p`` cells from each side of the full
    transposed convolution. Keras ``"valid"`` gives that full result (length
    ``n * s + max(k - s, 0)``, so ``s - k`` extra cells at the end when
    ``k < s``); this layer crops it. ``k=4, s=2, p=1`` is exactly 2x.
    Kernel layout ``(kh, kw, O, I)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: IntPair = 0,
        use_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        _channels_last_only(kwargs, type(self).__name__)
        kernel = to_pair(kernel_size, "kernel_size")
        stride = to_pair(strides, "strides")
        pad = to_pair(padding, "padding", minimum=0)
        if filters < 1:
            raise ArgumentError(f"filters must be >= 1, got {filters}")
        for axis, (k, s, p) in enumerate(zip(kernel, stride, pad)):
            if 2 * p >= k:
                # PyTorch's output (n - 1) * s - 2p + k would be empty for n = 1.
                raise ArgumentError(f"padding must be < kernel_size / 2 on axis {axis}, got padding {p} for kernel {k}")
        super().__init__(filters, kernel, strides=stride, padding="valid", use_bias=use_bias, **kwargs)
        self.torch_padding = pad
        # Cells to drop from each end of Keras's full output, per axis.
        self._crop = tuple((p, p + max(s - k, 0)) for k, s, p in zip(kernel, stride, pad))

    def call(self, inputs):
        full = super().call(inputs)
        (top, bottom), (left, right) = self._crop
        return full[:, top : -bottom or None, left : -right or None, :]

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = super().compute_output_shape(input_shape)
        (top, bottom), (left, right) = self._crop
        return (
            batch,
            None if height is None else height - top - bottom,
            None if width is None else width - left - right,
            channels,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["padding"] = self.torch_padding
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TorchBilinearResize(keras.layers.Layer):
    """``F.interpolate(x, size | scale_factor, mode="bilinear", align_corners=...)``.

    Reproduces PyTorch's source-index rule (ATen ``UpSample.h``,
    ``area_pixel_compute_scale`` / ``area_pixel_compute_source_index``), in
    the precision ATen uses for float inputs (a float32 ratio):

    - ``align_corners=True``: ``src = dst * (in - 1) / (out - 1)``;
    - ``align_corners=False``: ``src = max((dst + 0.5) * r - 0.5, 0)`` with
      ``r = 1 / scale_factor`` when a scale factor is given, else ``in / out``;

    then linear interpolation between ``floor(src)`` and the next index,
    clamped to the edge. Output size with ``scale_factor`` is
    ``floor(in * scale_factor)``. No antialiasing (PyTorch's default).
    """

    def __init__(
        self,
        size: IntPair | None = None,
        scale_factor: float | Sequence[float] | None = None,
        align_corners: bool = False,
        **kwargs: Any,
    ) -> None:
        _channels_last_only(kwargs, type(self).__name__)
        super().__init__(**kwargs)
        if (size is None) == (scale_factor is None):
            raise ArgumentError("give exactly one of size and scale_factor")
        self.size = None if size is None else to_pair(size, "size")
        if scale_factor is None:
            self.scale_factor = None
        else:
            factors = (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
            if len(factors) != 2 or not all(float(f) > 0 for f in factors):
                raise ArgumentError(f"scale_factor must be a positive number or pair, got {scale_factor!r}")
            self.scale_factor = tuple(float(f) for f in factors)
        self.align_corners = bool(align_corners)

    def _ratio(self, in_size: int, out_size: int, axis: int) -> np.float32:
        # ATen's area_pixel_compute_scale, in float32 (its accumulate type for float input).
        if self.align_corners:
            return np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
        if self.scale_factor is not None:
            return np.float32(1.0 / self.scale_factor[axis])
        return np.float32(in_size) / np.float32(out_size)

    def _static_axis(self, in_size: int, axis: int):
        """(index0, index1, weight1) for a known input size: computed here, exactly as ATen does."""
        if self.size is not None:
            out_size = self.size[axis]
        else:
            out_size = math.floor(in_size * self.scale_factor[axis])  # ATen: floor in double
        return _source_indices(in_size, out_size, self._ratio(in_size, out_size, axis), self.align_corners)

    def _dynamic_axis(self, in_size, axis: int):
        """(index0, index1, weight1) for a size known only at run time (TF graphs with a None dimension).

        Only where float32 and int32 provably reproduce ATen's double arithmetic:
        a scale factor ``p / q`` (exact as a fraction, both at most 2**15)
        gives ``floor(in * p / q)`` as ``(in * p) // q``, exact for inputs below
        2**16 (ATen's double product is exact there too);
        ``align_corners=True`` is ATen's float32 quotient and product (exact
        where the backend's float32 division is correctly rounded; TF's CPU
        kernel can be 1 ulp off for ``size=``); else
        ``r * (dst + 0.5) - 0.5`` with ``r = 1 / scale_factor`` a power of two
        has an exact float32 product, so both ATen's and this formula round
        the same exact value once. Other cases raise :class:`ArgumentError`.
        """
        if self.size is not None:
            out_size = self.size[axis]
        else:
            factor = fractions.Fraction(self.scale_factor[axis])
            if max(factor.numerator, factor.denominator) > 2**15:
                raise ArgumentError(
                    f"{self.name}: scale_factor {float(factor)} on an input of unknown size would need float64 "
                    "arithmetic; give the model a static input_shape"
                )
            out_size = (in_size * factor.numerator) // factor.denominator
        dst = ops.arange(out_size)
        in_f = ops.cast(in_size, "float32")
        if self.align_corners:
            out_f = ops.cast(out_size, "float32")
            ratio = ops.where(out_f > 1, (in_f - 1) / ops.maximum(out_f - 1, 1), 0.0)
            src = ops.cast(dst, "float32") * ratio
        else:
            ratio = None if self.size is not None else 1.0 / self.scale_factor[axis]
            if ratio is None or math.frexp(ratio)[0] != 0.5:
                raise ArgumentError(
                    f"{self.name}: a resize ratio that is not a power of two, on an input of unknown size, would "
                    "need float64 arithmetic; give the model a static input_shape"
                )
            src = ops.maximum((ops.cast(dst, "float32") + 0.5) * ratio - 0.5, 0.0)
        index0 = ops.minimum(ops.cast(ops.floor(src), "int32"), in_size - 1)
        index1 = ops.minimum(index0 + 1, in_size - 1)
        weight1 = ops.clip(src - ops.cast(index0, "float32"), 0.0, 1.0)
        return index0, index1, weight1

    def _resize_axis(self, x, axis: int):
        tensor_axis = axis + 1
        static = x.shape[tensor_axis]
        if static is not None:
            index0, index1, weight1 = (ops.convert_to_tensor(a) for a in self._static_axis(int(static), axis))
        else:
            index0, index1, weight1 = self._dynamic_axis(ops.shape(x)[tensor_axis], axis)
        weight0 = 1.0 - weight1
        shape = [1, 1, 1, 1]
        shape[tensor_axis] = -1
        weight0 = ops.cast(ops.reshape(weight0, shape), x.dtype)
        weight1 = ops.cast(ops.reshape(weight1, shape), x.dtype)
        return ops.take(x, index0, axis=tensor_axis) * weight0 + ops.take(x, index1, axis=tensor_axis) * weight1

    def call(self, inputs):
        return self._resize_axis(self._resize_axis(inputs, 0), 1)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        sizes = []
        for axis, n in enumerate((height, width)):
            if self.size is not None:
                sizes.append(self.size[axis])
            else:
                sizes.append(None if n is None else int(n * self.scale_factor[axis]))
        return (batch, sizes[0], sizes[1], channels)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(size=self.size, scale_factor=self.scale_factor, align_corners=self.align_corners)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TorchLeakyReLU(keras.layers.LeakyReLU):
    """``nn.LeakyReLU(negative_slope)``, with PyTorch's default slope 0.01.

    Keras's own default is 0.3, a silent difference when a slope is omitted.
    """

    def __init__(self, negative_slope: float = 0.01, **kwargs: Any) -> None:
        super().__init__(negative_slope=negative_slope, **kwargs)


@functools.lru_cache(maxsize=256)
def _source_indices(in_size: int, out_size: int, ratio: np.float32, align_corners: bool):
    """ATen's bilinear source indices and weight for one axis (``compute_source_index_and_lambda``).

    ``src`` is ``ratio * dst`` in float32 (align_corners), else
    ``ratio * (dst + 0.5) - 0.5`` evaluated in Python floats (ATen's double
    literals) and rounded once to float32, clamped at 0. Returns int32
    ``index0``, ``index1`` and float32 ``weight1`` (cached: never modify them).
    """
    dst = range(out_size)
    if align_corners:
        src = np.arange(out_size, dtype=np.float32) * ratio
    else:
        r = float(ratio)
        src = np.array([max(r * (d + 0.5) - 0.5, 0.0) for d in dst], dtype=np.float32)
    index0 = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
    index1 = np.minimum(index0 + 1, in_size - 1).astype(np.int32)
    weight1 = np.clip(src - index0.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    return index0, index1, weight1


def _padded_shape(input_shape, pad: tuple[int, int]):
    batch, height, width, channels = input_shape
    ph, pw = pad
    return (
        batch,
        None if height is None else height + 2 * ph,
        None if width is None else width + 2 * pw,
        channels,
    )
