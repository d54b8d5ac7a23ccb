"""``nn.Conv2d`` with TensorFlow ``SAME`` padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from .helpers import IntPair, to_pair
from .input_checks import check_nchw
from .padding import tf_same_pad, tf_same_pad_is_static, tf_same_pad_traceable


class Conv2dSame(nn.Conv2d):
    """A 2-D convolution whose output equals ``tf.nn.conv2d(..., padding="SAME")``.

    With ``groups == in_channels`` it equals ``tf.nn.depthwise_conv2d`` (weights
    in PyTorch layout; see :mod:`zoo.layouts`).

    Where TF's padding is the same for every input size (stride 1, or a 1x1
    effective kernel) it is fixed here at construction: symmetric amounts go
    into ``nn.Conv2d``'s own ``padding`` (no extra op), an odd total (even
    kernel) into one fixed ``F.pad``. Otherwise the amount depends on the input
    size, and ``forward`` applies one ``F.pad`` of exactly that amount, or none
    when it happens to be symmetric.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        kernel = to_pair(kernel_size, "kernel_size")
        strides = to_pair(stride, "stride")
        dilations = to_pair(dilation, "dilation")
        _check_channels(in_channels, out_channels, groups)
        static = all(tf_same_pad_is_static(k, s, d) for k, s, d in zip(kernel, strides, dilations))
        # Fixed pads per axis, from any input size (they do not depend on it).
        fixed = [tf_same_pad(1, k, s, d) for k, s, d in zip(kernel, strides, dilations)] if static else None
        symmetric = fixed is not None and all(before == after for before, after in fixed)
        super().__init__(
            in_channels,
            out_channels,
            kernel,
            stride=strides,
            padding=tuple(before for before, _ in fixed) if symmetric else 0,
            dilation=dilations,
            groups=groups,
            bias=bias,
        )
        self.static_same_pad: bool = static
        # F.pad order is (left, right, top, bottom).
        self._fixed_pad: tuple[int, int, int, int] | None = None
        if static and not symmetric:
            (top, bottom), (left, right) = fixed
            self._fixed_pad = (left, right, top, bottom)

    def conv_operands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(input, kernel, symmetric padding) for the one ``F.conv2d`` that computes TF ``SAME`` on ``x``.

        The input comes back padded (one ``F.pad``) only where TF's padding is
        asymmetric; inference forms (``zoo.fold``) override this, not ``forward``.
        """
        if self.static_same_pad:
            if self._fixed_pad is not None:
                x = F.pad(x, self._fixed_pad)
            return x, self.weight, (int(self.padding[0]), int(self.padding[1]))
        (top, bottom), (left, right) = (
            tf_same_pad_traceable(n, k, s, d)
            for n, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation)
        )
        if top == bottom and left == right:
            return x, self.weight, (top, left)
        return F.pad(x, (left, right, top, bottom)), self.weight, (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.in_channels, type(self).__name__)
        x, weight, padding = self.conv_operands(x)
        return F.conv2d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)


def _check_channels(in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels < 1 or out_channels < 1:
        raise ArgumentError(f"in_channels and out_channels must be >= 1, got {in_channels} and {out_channels}")
    if groups < 1:
        raise ArgumentError(f"groups must be >= 1, got {groups}")
    if in_channels % groups or out_channels % groups:
        raise ArgumentError(
            f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be divisible by groups ({groups})"
        )
