"""Inference-only rewrites that keep parity: batch norm folded into convolutions, and TF ``SAME``
padding without a padded copy (:class:`Conv2dSameWideKernel`). :func:`zoo.fast_inference_model`
builds on them (and compiles); this module stays free of ``torch.compile``.

Nothing here changes a model in place or alters the default builders; each
function returns a new module. Folding is exact algebra done in float64 and
rounded once to float32: eval-mode batch norm is the affine map
``y = (z - mean) * gamma / sqrt(var + eps) + beta``, so for ``z = conv(x, W)``
it equals ``conv(x, W * s) + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)``.
The result differs from the unfolded model by float32 rounding only (measured
by ``benchmarks/run.py`` against the upstream graph on every run).

    import zoo
    from zoo.fold import fold_batch_norms
    folded = fold_batch_norms(zoo.resnet50_tf_compat(weights="resnet50.safetensors"))
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ArgumentError, InputTypeError
from .layers import Conv2dSame
from .layers.padding import tf_same_pad_traceable


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of ``conv`` (same class, same padding behaviour) that also applies eval-mode ``bn``."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise InputTypeError(f"expected Conv2d and BatchNorm2d, got {type(conv).__name__} and {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ArgumentError("batch norm without running statistics cannot be folded")
    if conv.out_channels != bn.num_features:
        raise ArgumentError(f"conv has {conv.out_channels} outputs, batch norm {bn.num_features} features")
    folded = copy.deepcopy(conv)
    weight = conv.weight.detach().double()
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    folded.weight = nn.Parameter((weight * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype), requires_grad=False)
    folded.bias = nn.Parameter(((bias - mean) * scale + beta).to(conv.weight.dtype), requires_grad=False)
    return folded


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """(conv child name, bn child name) pairs that ``module.forward`` applies back to back.

    The ports name them so: ``conv``/``bn`` (``ConvBnAct``), ``convN``/``bnN``
    (ResNet's stem and bottlenecks), and consecutive entries of an
    ``nn.Sequential`` (ResNet's ``downsample``).
    """
    children = dict(module.named_children())
    pairs = []
    if isinstance(module, nn.Sequential):
        names = list(children)
        pairs += [(a, b) for a, b in zip(names, names[1:])
                  if isinstance(children[a], nn.Conv2d) and isinstance(children[b], nn.BatchNorm2d)]
    for name, child in children.items():
        if isinstance(child, nn.Conv2d) and name.startswith("conv"):
            bn_name = "bn" + name[len("conv"):]
            if isinstance(children.get(bn_name), nn.BatchNorm2d):
                pairs.append((name, bn_name))
    return pairs


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every conv -> batch norm pair folded into the conv.

    The batch norm becomes ``nn.Identity``, so each module's ``forward`` is
    unchanged. Only for inference: the folded model has no batch statistics.
    """
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        for conv_name, bn_name in _conv_bn_pairs(module):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            setattr(module, conv_name, fold_conv_bn(conv, bn))
            setattr(module, bn_name, nn.Identity())
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded


def fast_inference_model(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """Deprecated: use :func:`zoo.fast_inference_model` (compiled and frozen where a compiler exists).

    The eager folded form: ``fold_batch_norms(model)`` with :func:`widen_same_kernels`,
    in channels_last memory format by default.
    """
    warnings.warn("zoo.fold.fast_inference_model is deprecated: use zoo.fast_inference_model "
                  "(zoo.fast.eager_folded_model for the eager folded form)", DeprecationWarning, stacklevel=2)
    folded = widen_same_kernels(fold_batch_norms(model))
    return folded.to(memory_format=torch.channels_last) if channels_last else folded


class Conv2dSameWideKernel(Conv2dSame):
    """A :class:`Conv2dSame` for inference that never copies its input into a padded buffer.

    TF's ``SAME`` padding puts the odd cell after: ``(p, p + 1)`` on an axis.
    With dilation 1 that equals symmetric padding ``(p + 1, p + 1)`` with a
    kernel one tap longer on that axis whose first tap is zero: the extra
    leading input cell meets the zero tap, and the output size is the same
    (``(n + 2p + 2 - (k + 1)) // s + 1``). The zero taps add exact zeros, so the
    result equals the padded convolution up to fp32 summation order, and the
    convolution takes its padding itself, with no ``F.pad`` copy (for MobileNet-v1's
    stride-2 depthwise layers at batch 32 that halves their time; dense
    convolutions pay 16/9 of the MACs for a 3x3 kernel, see :func:`widen_same_kernels`).

    The widened kernels are derived from ``weight`` on first use and again
    whenever ``weight`` is replaced, changed in place, or moved.
    """

    @classmethod
    def from_conv(cls, conv: Conv2dSame) -> "Conv2dSameWideKernel":
        """The same convolution, sharing ``conv``'s weight and bias."""
        wide = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.dilation, conv.groups,
                   bias=conv.bias is not None)
        wide.weight, wide.bias = conv.weight, conv.bias
        return wide

    def _wide_kernel(self, widen_h: bool, widen_w: bool) -> torch.Tensor:
        weight = self.weight
        if torch.compiler.is_compiling():
            # No cache while tracing (its id()/_version keys break the graph): the zero tap is one
            # F.pad of the weight, which inductor's freezing folds into a constant.
            return F.pad(weight, (int(widen_w), 0, int(widen_h), 0))
        # Inference tensors (made under torch.inference_mode) carry no version counter.
        version = None if weight.is_inference() else weight._version
        key = (id(weight), version, weight.device, weight.dtype)
        cache = self.__dict__.setdefault("_wide_kernels", {})
        if cache.get("key") != key:
            cache.clear()
            cache["key"] = key
        if (widen_h, widen_w) not in cache:
            out, cin, kh, kw = weight.shape
            wide = weight.detach().new_zeros(out, cin, kh + widen_h, kw + widen_w)
            wide[:, :, int(widen_h):, int(widen_w):] = weight.detach()
            cache[widen_h, widen_w] = wide
        return cache[widen_h, widen_w]

    def conv_operands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(input, kernel, symmetric padding) giving TF ``SAME`` on ``x`` with no ``F.pad`` (dilation 1)."""
        if self.static_same_pad or tuple(self.dilation) != (1, 1) or (self.weight.requires_grad and torch.is_grad_enabled()):
            return super().conv_operands(x)  # static padding needs no copy; the wide kernel carries no gradient
        (top, bottom), (left, right) = (
            tf_same_pad_traceable(n, k, s, 1) for n, k, s in zip(x.shape[-2:], self.kernel_size, self.stride))
        widen_h, widen_w = bottom > top, right > left
        weight = self._wide_kernel(widen_h, widen_w) if widen_h or widen_w else self.weight
        return x, weight, (bottom, right)


def widen_same_kernels(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each input-size-dependent depthwise :class:`Conv2dSame` as a
    :class:`Conv2dSameWideKernel`.

    Only depthwise ones: there the zero taps cost next to nothing (a few MACs per
    output, against a full copy of the input), while in a dense convolution a
    3x3 -> 4x4 kernel costs 16/9 of the MACs, which measured slower than the
    copy (``benchmarks/padding.py``; MobileNet-v1's RGB stem included).
    """
    wide = copy.deepcopy(model)
    for parent in list(wide.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is Conv2dSame and not child.static_same_pad and child.groups == child.in_channels > 1:
                setattr(parent, name, Conv2dSameWideKernel.from_conv(child))
    return wide


def count_batch_norms(model: nn.Module) -> int:
    """Number of ``nn.BatchNorm2d`` modules left in ``model``."""
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
