"""BatchNorm configured the way a TensorFlow graph computed it."""

from __future__ import annotations

from torch import nn

from ..errors import ArgumentError

# TF fused batch norm ops apply their epsilon attr as given; only TF 1.x's graph-building
# wrapper raised it to this floor (tensorflow/python/ops/nn_impl.py, fused_batch_norm:
# "min_epsilon = 1.001e-5"), so ports pass the epsilon the graph stores.
TF1_FUSED_BN_MIN_EPSILON = 1.001e-5
TF_FUSED_BN_MIN_EPSILON = TF1_FUSED_BN_MIN_EPSILON  # the former name, kept for importers


def tf_fused_bn_epsilon(epsilon: float) -> float:
    """The epsilon a TF fused batch norm node whose ``epsilon`` attr is ``epsilon`` computes with: that value.

    Validates it (> 0) and returns it unchanged; it never raises it to a floor
    (TF ops apply their attr as given: see :data:`TF1_FUSED_BN_MIN_EPSILON`).
    """
    if not epsilon > 0:
        raise ArgumentError(f"epsilon must be > 0, got {epsilon}")
    return float(epsilon)


def tf1_fused_bn_epsilon(epsilon: float) -> float:
    """The ``epsilon`` attr TF 1.x's ``tf.nn.fused_batch_norm`` stored for a requested ``epsilon``.

    ``max(epsilon, 1.001e-5)``: an explicit, opt-in floor for code that starts
    from a TF 1.x model's source value rather than from its graph.
    """
    return max(tf_fused_bn_epsilon(epsilon), TF1_FUSED_BN_MIN_EPSILON)


def tf_momentum_to_torch(decay: float) -> float:
    """PyTorch ``momentum`` for a TF/Keras moving-average ``decay``.

    TF updates ``moving = decay * moving + (1 - decay) * batch``; PyTorch
    ``running = (1 - momentum) * running + momentum * batch``.
    """
    if not 0.0 <= decay <= 1.0:
        raise ArgumentError(f"decay must be in [0, 1], got {decay}")
    return 1.0 - decay


def batch_norm_2d_tf(num_features: int, epsilon: float = 0.001, decay: float = 0.99) -> nn.BatchNorm2d:
    """``nn.BatchNorm2d`` computing what a TF fused batch norm with ``epsilon`` computes.

    ``epsilon`` is the value the TF graph's batch norm node stores (its
    ``epsilon`` attr), used exactly: for a TF 1.x graph built with an epsilon
    below 1.001e-5 that is the raised value (see :func:`tf1_fused_bn_epsilon`).
    ``decay`` is the TF moving-average decay (TF-slim and Keras default to
    0.001 and 0.99); the inverted momentum is applied here.
    """
    if num_features < 1:
        raise ArgumentError(f"num_features must be >= 1, got {num_features}")
    return nn.BatchNorm2d(num_features, eps=tf_fused_bn_epsilon(epsilon), momentum=tf_momentum_to_torch(decay))
