"""TensorFlow semantics in PyTorch: the building blocks that make a port exact.

Every layer here takes NCHW input and computes what the TF op of the same name
computes on the NHWC transpose of that input (tested against TF in
``tests/test_layers.py``).

The PyTorch layers are imported on first use (PEP 562), so that the
framework-free modules :mod:`zoo.layers.padding` (TF's ``SAME`` rule) and
:mod:`zoo.layers.helpers` (argument checks), which :mod:`zoo.keras` and the
converters share, import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .padding import tf_same_pad, tf_same_pad_is_static

# Public name -> the submodule that defines it (each imports torch).
_LAZY = {
    "TF1_FUSED_BN_MIN_EPSILON": "batchnorm",
    "TF_FUSED_BN_MIN_EPSILON": "batchnorm",
    "batch_norm_2d_tf": "batchnorm",
    "tf1_fused_bn_epsilon": "batchnorm",
    "tf_fused_bn_epsilon": "batchnorm",
    "tf_momentum_to_torch": "batchnorm",
    "Conv2dSame": "conv2d_same",
    "ConvBnAct": "conv_bn_act",
    "AvgPool2dSame": "pool2d_same",
    "MaxPool2dSame": "pool2d_same",
}

__all__ = [
    "AvgPool2dSame",
    "Conv2dSame",
    "ConvBnAct",
    "MaxPool2dSame",
    "TF1_FUSED_BN_MIN_EPSILON",
    "TF_FUSED_BN_MIN_EPSILON",
    "batch_norm_2d_tf",
    "tf1_fused_bn_epsilon",
    "tf_fused_bn_epsilon",
    "tf_momentum_to_torch",
    "tf_same_pad",
    "tf_same_pad_is_static",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
