"""ResNet-50 v1.5 as MLPerf Inference ships it (TF frozen graph ``resnet50_v1.pb``), in PyTorch.

The facts about the model (upstream, layer lists, strides, epsilon, number of
classes) are in :mod:`zoo.specs.resnet50`; its input, preprocessing and
reference accuracy in its registry entry (``zoo.get_model_entry("resnet50")``).

Padding, as the TF code does it: strided convolutions use ``fixed_padding``
((k-1)//2 before, the rest after, then VALID), which is symmetric for the odd
kernels here and does not depend on the input size; stride-1 convolutions use
SAME, also symmetric for odd kernels. So every convolution is a plain
``nn.Conv2d(padding=(k-1)//2)``. The max pool is TF ``SAME`` (on 112x112 it
pads 0 before and 1 after), hence :class:`zoo.layers.MaxPool2dSame`.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import ArgumentError
from ..hub import resolve_weights
from ..layers import MaxPool2dSame, batch_norm_2d_tf
from ..layers.input_checks import check_input_tensor, check_nchw, parameter_dtype
# Architecture constants (stages, widths, strides, batch-norm epsilon and decay), shared with Keras.
from ..specs.resnet50 import BLOCKS, BN_DECAY, BN_EPSILON, EXPANSION, FILTERS, STRIDES
from ..weights import load_torch_weights


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    # conv2d_fixed_padding: no bias; symmetric (k-1)//2 for odd k (see the module docstring).
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return batch_norm_2d_tf(channels, epsilon=BN_EPSILON, decay=BN_DECAY)


class Bottleneck(nn.Module):
    """v1 bottleneck: 1x1 -> 3x3 (stride here, v1.5) -> 1x1 (4f), plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, filters: int, stride: int, projection: bool) -> None:
        super().__init__()
        out_channels = filters * EXPANSION
        self.conv1, self.bn1 = _conv(in_channels, filters, 1), _bn(filters)
        self.conv2, self.bn2 = _conv(filters, filters, 3, stride), _bn(filters)
        self.conv3, self.bn3 = _conv(filters, out_channels, 1), _bn(out_channels)
        self.relu = nn.ReLU(inplace=True)
        # Only each stage's first block projects (1x1 stride s + BN).
        self.downsample = nn.Sequential(_conv(in_channels, out_channels, 1, stride), _bn(out_channels)) if projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet50TfCompat(nn.Module):
    """ResNet-50 v1.5 computing what MLPerf's TF graph computes, at any input size >= 32.

    State-dict names follow torchvision's ResNet (``conv1``, ``bn1``,
    ``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc``).
    """

    def __init__(self, num_classes: int = 1001) -> None:
        super().__init__()
        if num_classes < 1:
            raise ArgumentError(f"num_classes must be >= 1, got {num_classes}")
        self.conv1, self.bn1 = _conv(3, 64, 7, 2), _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = MaxPool2dSame(3, 2)
        channels = 64
        for index, (blocks, filters, stride) in enumerate(zip(BLOCKS, FILTERS, STRIDES), start=1):
            layer = []
            for block in range(blocks):
                layer.append(Bottleneck(channels, filters, stride if block == 0 else 1, projection=block == 0))
                channels = filters * EXPANSION
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.num_features = channels
        self.fc = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 2048, ceil(H/32), ceil(W/32))."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_tensor(x, parameter_dtype(self), "NCHW (B, 3, H, W)", type(self).__name__)
        check_nchw(x, 3, type(self).__name__)
        # resnet_model/Mean over H, W, Squeeze, then the dense layer (final_dense).
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))


def resnet50_tf_compat(weights: str | os.PathLike | None = None, num_classes: int = 1001,
                       cast_weights: bool = False) -> ResNet50TfCompat:
    """MLPerf's ResNet-50 v1.5 in PyTorch.

    Args:
        weights: ``None`` for random initialisation; the path of a converted
            ``.safetensors`` file (``python scripts/convert.py resnet50 ...``); or
            a weights tag (``"mlperf"``), whose file :func:`zoo.hub.resolve_weights`
            finds in the cache, downloads or converts.
        num_classes: 1001 for the upstream classifier (class 0 = background).
        cast_weights: cast a weights file of another dtype (float16, int8, ...)
            to float32 instead of refusing it.

    Returns the model in eval mode, with or without weights (batch norm uses
    its running statistics; call ``model.train()`` to fine-tune). Input: a
    float32 ``torch.Tensor``, NCHW, MLPerf ``pre_process_vgg``; a NumPy array
    or another dtype raises :class:`zoo.errors.InputTypeError`. Output: logits
    (B, num_classes).
    """
    model = ResNet50TfCompat(num_classes)
    if weights is not None:
        load_torch_weights(model, resolve_weights(weights, "resnet50"), cast=cast_weights)
    return model.eval()
