"""Model variants the benchmark compares the zoo ports against (same weights, rewired padding).

* :func:`naive_padding_model`: every convolution and pool pads with one
  ``F.pad`` computed in Python on every forward, then runs unpadded (VALID),
  the approach of zoos that emulate TF ``SAME`` per call (e.g. timm's
  ``pad_same``). Same function as the zoo port, so it must keep parity.
* :func:`symmetric_padding_model`: every TF ``SAME`` layer replaced by
  PyTorch's symmetric padding of the same output size and FLOPs. A different
  function (not exact by design): the control against which the cost of
  TF-``SAME`` padding is measured.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers import Conv2dSame, MaxPool2dSame


def _same_pad_python(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    # TF's SAME rule (kernel_shape_util.cc), recomputed per call with no cache, as naive ports do.
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class NaivePadConv2d(nn.Module):
    """A convolution that computes its padding in Python on every call and always applies ``F.pad``.

    ``rule="same"``: TF ``SAME`` from the input size; ``rule="fixed"``: TF
    official's ``fixed_padding`` ((k-1)//2 before, the rest after), which the
    ResNet graph applies with an explicit Pad before its strided VALID convs.
    """

    def __init__(self, conv: nn.Conv2d, rule: str) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.kernel_size, self.stride, self.dilation, self.groups = conv.kernel_size, conv.stride, conv.dilation, conv.groups
        self.rule = rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            if self.rule == "same":
                pads.append(_same_pad_python(int(n), k, s, d))
            else:
                total = (k - 1) * d
                pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class NaivePadMaxPool2d(nn.Module):
    """TF ``SAME`` max pooling with the -inf padding computed and applied on every call."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.kernel_size, self.stride = pool.kernel_size, pool.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = (_same_pad_python(int(n), k, s, 1) for n, k, s in zip(x.shape[-2:], self.kernel_size, self.stride))
        return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), self.kernel_size, self.stride)


def _replace(model: nn.Module, make: "callable") -> nn.Module:
    """A deep copy of ``model`` with each child that ``make`` maps to a module replaced by it."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            replacement = make(child)
            if replacement is not None:
                setattr(parent, name, replacement)
    return model


def naive_padding_model(model: nn.Module) -> nn.Module:
    """``model`` with per-call Python padding before every convolution and TF ``SAME`` pool."""

    def make(child: nn.Module) -> nn.Module | None:
        if isinstance(child, Conv2dSame):
            return NaivePadConv2d(child, "same")
        if isinstance(child, nn.Conv2d) and child.padding != "same":
            # ResNet: fixed_padding for strided convs, SAME (also (k-1)//2 each side, odd k) for the rest.
            return NaivePadConv2d(child, "fixed")
        if isinstance(child, MaxPool2dSame):
            return NaivePadMaxPool2d(child)
        return None

    return _replace(model, make).eval()


def symmetric_padding_model(model: nn.Module) -> nn.Module:
    """``model`` with every TF ``SAME`` layer padding symmetrically by (k-1)//2 instead (same shapes, same FLOPs)."""

    def make(child: nn.Module) -> nn.Module | None:
        if isinstance(child, Conv2dSame):
            conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                             tuple((k - 1) // 2 for k in child.kernel_size), child.dilation, child.groups,
                             bias=child.bias is not None)
            conv.weight, conv.bias = child.weight, child.bias
            return conv
        if isinstance(child, MaxPool2dSame):
            return nn.MaxPool2d(child.kernel_size, child.stride, tuple((k - 1) // 2 for k in child.kernel_size))
        return None

    return _replace(model, make).eval()


def has_tf_same_layers(model: nn.Module) -> bool:
    """Whether ``model`` has any TF ``SAME`` layer (else the padding rows do not apply)."""
    return any(isinstance(m, (Conv2dSame, MaxPool2dSame)) for m in model.modules())
