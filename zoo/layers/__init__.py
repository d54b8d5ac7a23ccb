"""TensorFlow semantics in PyTorch: the building blocks that make a port exact.

Every layer here takes NCHW input and computes what the TF op of the same name
computes on the NHWC transpose of that input (tested against TF in
``tests/test_layers.py``).
"""

from .batchnorm import (
    TF1_FUSED_BN_MIN_EPSILON,
    TF_FUSED_BN_MIN_EPSILON,
    batch_norm_2d_tf,
    tf1_fused_bn_epsilon,
    tf_fused_bn_epsilon,
    tf_momentum_to_torch,
)
from .conv2d_same import Conv2dSame
from .conv_bn_act import ConvBnAct
from .padding import tf_same_pad, tf_same_pad_is_static
from .pool2d_same import AvgPool2dSame, MaxPool2dSame

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
