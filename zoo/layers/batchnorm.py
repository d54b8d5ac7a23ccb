"""BatchNorm configured the way a TensorFlow graph computed it."""

from __future__ import annotations

from torch import nn

# TF 1.x ``tf.nn.fused_batch_norm`` (tensorflow/python/ops/nn_impl.py) raised
# any epsilon below 1.001e-5 to 1.001e-5, cuDNN's CUDNN_BN_MIN_EPSILON plus a
# margin, and stored the raised value in the graph's FusedBatchNorm node: a
# model written with epsilon=1e-5 computed with 1.001e-5. TF 2.x dropped the
# floor, so graphs from 1.x carry it and ports must apply it.
TF_FUSED_BN_MIN_EPSILON = 1.001e-5


def tf_fused_bn_epsilon(epsilon: float) -> float:
    """The epsilon TF 1.x fused batch norm actually used for ``epsilon``."""
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    return max(epsilon, TF_FUSED_BN_MIN_EPSILON)


def tf_momentum_to_torch(decay: float) -> float:
    """PyTorch ``momentum`` for a TF/Keras moving-average ``decay``.

    TF updates ``moving = decay * moving + (1 - decay) * batch``; PyTorch
    ``running = (1 - momentum) * running + momentum * batch``.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    return 1.0 - decay


def batch_norm_2d_tf(num_features: int, epsilon: float = 0.001, decay: float = 0.99) -> nn.BatchNorm2d:
    """``nn.BatchNorm2d`` computing what a TF fused batch norm with ``epsilon`` computes.

    ``epsilon`` and ``decay`` are given as the TF model states them (TF-slim and
    Keras default to 0.001 and 0.99); the fused-BN floor and the inverted
    momentum are applied here so that no port has to remember them.
    """
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    return nn.BatchNorm2d(num_features, eps=tf_fused_bn_epsilon(epsilon), momentum=tf_momentum_to_torch(decay))
