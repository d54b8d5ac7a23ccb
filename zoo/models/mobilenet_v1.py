"""MobileNet-v1 1.0/224 as MLPerf Inference ships it (TF-slim), in PyTorch.

The facts about the model (upstream release, layer list, strides, epsilon,
number of classes) are in :mod:`zoo.specs.mobilenet_v1`; its input,
preprocessing and reference accuracy in its registry entry
(``zoo.get_model_entry("mobilenet_v1")``).
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
from torch import nn

from ..errors import ArgumentError
from ..hub import resolve_weights
from ..layers import ConvBnAct
from ..layers.input_checks import check_input_tensor, check_nchw, parameter_dtype
# Architecture constants (TF-slim MOBILENETV1_CONV_DEFS, epsilon), shared with Keras.
from ..specs.mobilenet_v1 import BN_EPSILON, SEPARABLE_BLOCKS, STEM_CHANNELS
from ..weights import load_torch_weights


class MobileNetV1TfCompat(nn.Module):
    """MobileNet-v1 computing what the TF-slim graph computes, at any input size >= 32.

    Every convolution is TF ``SAME`` (``zoo.layers.Conv2dSame``) followed by
    batch norm (epsilon 0.001) and ReLU6. The head averages over all positions:
    at 224x224 that is upstream's ``AvgPool_1a`` (7x7 VALID on a 7x7 map), at
    other sizes it is slim's ``global_pool=True``.
    """

    def __init__(self, num_classes: int = 1001) -> None:
        super().__init__()
        if num_classes < 1:
            raise ArgumentError(f"num_classes must be >= 1, got {num_classes}")
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        blocks["conv2d_0"] = ConvBnAct(3, STEM_CHANNELS, 3, 2, epsilon=BN_EPSILON, act=nn.ReLU6())
        channels = STEM_CHANNELS
        for index, (out_channels, stride) in enumerate(SEPARABLE_BLOCKS, start=1):
            blocks[f"conv2d_{index}_depthwise"] = ConvBnAct(
                channels, channels, 3, stride, groups=channels, epsilon=BN_EPSILON, act=nn.ReLU6()
            )
            blocks[f"conv2d_{index}_pointwise"] = ConvBnAct(
                channels, out_channels, 1, epsilon=BN_EPSILON, act=nn.ReLU6()
            )
            channels = out_channels
        self.features = nn.Sequential(blocks)
        self.num_features = channels
        # Logits/Conv2d_1c_1x1: a 1x1 convolution with biases (dropout is identity at inference).
        self.logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_tensor(x, parameter_dtype(self), "NCHW (B, 3, H, W)", type(self).__name__)
        check_nchw(x, 3, type(self).__name__)
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone: (B, 3, H, W) -> (B, 1024, ceil(H/32), ceil(W/32))."""
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Average pool, 1x1 logits conv, squeeze: -> (B, num_classes)."""
        pooled = features.mean(dim=(2, 3), keepdim=True)
        return self.logits(pooled).flatten(1)


def mobilenet_v1_tf_compat(weights: str | os.PathLike | None = None, num_classes: int = 1001,
                           cast_weights: bool = False) -> MobileNetV1TfCompat:
    """MLPerf's MobileNet-v1 1.0/224 in PyTorch.

    Args:
        weights: ``None`` for random initialisation; the path of a converted
            ``.safetensors`` file (``python scripts/convert.py mobilenet_v1 ...``);
            or a weights tag (``"mlperf"``), whose file :func:`zoo.hub.resolve_weights`
            finds in the cache, downloads or converts.
        num_classes: 1001 for the upstream classifier (class 0 = background).
        cast_weights: cast a weights file of another dtype (float16, int8, ...)
            to float32 instead of refusing it.

    Returns the model in eval mode, with or without weights (batch norm uses
    its running statistics; call ``model.train()`` to fine-tune). Input: a
    float32 ``torch.Tensor``, NCHW, in [-1, 1] (MLPerf ``pre_process_mobilenet``);
    a NumPy array or another dtype raises :class:`zoo.errors.InputTypeError`.
    Output: logits (B, num_classes).
    """
    model = MobileNetV1TfCompat(num_classes)
    if weights is not None:
        load_torch_weights(model, resolve_weights(weights, "mobilenet_v1"), cast=cast_weights)
    return model.eval()
