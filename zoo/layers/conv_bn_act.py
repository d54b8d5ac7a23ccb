"""Convolution, TF batch norm and activation: the unit TF-born CNNs are made of."""

from __future__ import annotations

import torch
from torch import nn

from .batchnorm import batch_norm_2d_tf
from .conv2d_same import Conv2dSame
from .helpers import IntPair


class ConvBnAct(nn.Module):
    """``conv`` (TF ``SAME``, no bias) -> ``bn`` (TF fused batch norm) -> ``act``.

    Submodule names ``conv`` and ``bn`` fix the canonical state-dict names
    (``<prefix>.conv.weight``, ``<prefix>.bn.running_var``, ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        groups: int = 1,
        epsilon: float = 0.001,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv = Conv2dSame(in_channels, out_channels, kernel_size, stride, groups=groups, bias=False)
        self.bn = batch_norm_2d_tf(out_channels, epsilon=epsilon)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))
