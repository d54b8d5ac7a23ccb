"""Max and average pooling with TensorFlow ``SAME`` padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .helpers import IntPair, to_pair
from .input_checks import check_nchw
from .padding import tf_same_pad_traceable


def _same_pads(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int, int, int]:
    """TF ``SAME`` pads for ``x`` in ``F.pad`` order (left, right, top, bottom)."""
    (top, bottom), (left, right) = (tf_same_pad_traceable(n, k, s) for n, k, s in zip(x.shape[-2:], kernel, stride))
    return left, right, top, bottom


def max_pool_same_needs_pad(pads: tuple[tuple[int, int], ...], strides: tuple[int, ...]) -> bool:
    """Whether TF ``SAME`` max pooling with these (before, after) pads needs an explicit -inf pad.

    Not when each axis is symmetric, or has one extra cell after at stride > 1:
    PyTorch's symmetric ``padding=before`` with ``ceil_mode=True`` then lets the
    last window run one cell past the input, and a max over the real cells is
    what TF's -inf padding gives. (At stride 1 ``ceil_mode`` adds no window.)
    """
    return not all(after == before or (after == before + 1 and s > 1) for (before, after), s in zip(pads, strides))


class MaxPool2dSame(nn.MaxPool2d):
    """Equals ``tf.nn.max_pool2d(..., padding="SAME")``.

    TF never lets a padded cell win the max. PyTorch's own ``padding`` has the
    same -inf semantics but is symmetric (and at most half the kernel): it is
    used where TF's padding is symmetric, and, with ``ceil_mode``, where TF pads
    one cell more after at stride > 1 (ResNet-50's 3x3/2 pool on 112x112 pads
    (0, 1)); no copy of the input is made then. Otherwise the input is padded
    once with -inf. Every SAME window holds at least one real cell, so -inf
    never reaches the output.
    """

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None) -> None:
        kernel = to_pair(kernel_size, "kernel_size")
        strides = kernel if stride is None else to_pair(stride, "stride")
        super().__init__(kernel, strides)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, None, type(self).__name__)
        left, right, top, bottom = _same_pads(x, self.kernel_size, self.stride)
        if not max_pool_same_needs_pad(((top, bottom), (left, right)), self.stride):
            ceil_mode = bottom > top or right > left
            return F.max_pool2d(x, self.kernel_size, self.stride, (top, left), ceil_mode=ceil_mode)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)


class AvgPool2dSame(nn.AvgPool2d):
    """Equals ``tf.nn.avg_pool2d(..., padding="SAME")``.

    TF divides each window's sum by the number of real (unpadded) cells in it.
    PyTorch's ``count_include_pad=False`` does the same for symmetric padding;
    for TF's asymmetric padding the sums are taken over a zero-padded input and
    divided by the real-cell counts, which are the same pooling applied to ones.
    """

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None) -> None:
        kernel = to_pair(kernel_size, "kernel_size")
        strides = kernel if stride is None else to_pair(stride, "stride")
        super().__init__(kernel, strides, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, None, type(self).__name__)
        left, right, top, bottom = _same_pads(x, self.kernel_size, self.stride)
        if left == right and top == bottom:
            return F.avg_pool2d(x, self.kernel_size, self.stride, (top, left), count_include_pad=False)
        pads = (left, right, top, bottom)
        sums = F.avg_pool2d(F.pad(x, pads), self.kernel_size, self.stride, divisor_override=1)
        ones = torch.ones((1, 1) + tuple(x.shape[-2:]), dtype=x.dtype, device=x.device)
        counts = F.avg_pool2d(F.pad(ones, pads), self.kernel_size, self.stride, divisor_override=1)
        return sums / counts
