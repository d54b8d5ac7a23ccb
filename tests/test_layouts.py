"""zoo.layouts: the same weights give the same outputs in PyTorch and Keras.

Each test builds a layer in one framework with random weights, converts them
with zoo.layouts, loads them into the other framework's native layer, and
compares outputs: max |diff| <= 1e-5 (fp32). Both directions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from zoo.layouts import BATCHNORM_TF_TO_TORCH, BATCHNORM_TORCH_TO_TF, Layout, tf_to_torch, torch_to_tf

TOL = 1e-5


def _torch_nhwc(layer: nn.Module, x_nhwc: np.ndarray) -> np.ndarray:
    if x_nhwc.ndim == 2:  # dense: (batch, features) in both frameworks
        with torch.no_grad():
            return layer(torch.from_numpy(x_nhwc)).numpy()
    with torch.no_grad():
        y = layer(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
    return y.numpy().transpose(0, 2, 3, 1)


def _randomize(module: nn.Module, rng: np.random.Generator) -> None:
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.dtype.is_floating_point:
                tensor.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, tuple(tensor.shape)).astype(np.float32)))


def _assert_close(a, b) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert float(np.abs(a - b).max()) <= TOL * max(1.0, float(np.abs(b).max()))


# (torch layer, keras layer factory, input shape NHWC, [(torch name, keras weight index, layout)])
def _cases(keras):
    return {
        "conv": (
            lambda: nn.Conv2d(3, 5, (3, 2)),
            lambda: keras.layers.Conv2D(5, (3, 2)),
            (2, 7, 6, 3),
            [("weight", 0, Layout.CONV), ("bias", 1, Layout.VECTOR)],
            1,
        ),
        "depthwise": (
            lambda: nn.Conv2d(4, 8, 3, groups=4, bias=False),
            lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False),
            (2, 7, 6, 4),
            [("weight", 0, Layout.DEPTHWISE)],
            2,
        ),
        "conv_transpose": (
            lambda: nn.ConvTranspose2d(3, 5, 4, 2),
            lambda: keras.layers.Conv2DTranspose(5, 4, 2),
            (2, 5, 6, 3),
            [("weight", 0, Layout.CONV_TRANSPOSE), ("bias", 1, Layout.VECTOR)],
            1,
        ),
        "dense": (
            lambda: nn.Linear(6, 4),
            lambda: keras.layers.Dense(4),
            (3, 6),
            [("weight", 0, Layout.DENSE), ("bias", 1, Layout.VECTOR)],
            1,
        ),
    }


@pytest.mark.parametrize("kind", ["conv", "depthwise", "conv_transpose", "dense"])
def test_torch_weights_in_keras(keras, rng, kind):
    make_torch, make_keras, shape, names, multiplier = _cases(keras)[kind]
    torch_layer = make_torch()
    _randomize(torch_layer, rng)
    keras_layer = make_keras()
    keras_layer.build((None,) + shape[1:])
    weights = keras_layer.get_weights()
    for name, index, layout in names:
        weights[index] = torch_to_tf(layout, getattr(torch_layer, name).detach().numpy(), channel_multiplier=multiplier)
    keras_layer.set_weights(weights)
    x = rng.standard_normal(shape).astype(np.float32)
    _assert_close(keras_layer(x), _torch_nhwc(torch_layer, x))


@pytest.mark.parametrize("kind", ["conv", "depthwise", "conv_transpose", "dense"])
def test_keras_weights_in_torch(keras, rng, kind):
    make_torch, make_keras, shape, names, _ = _cases(keras)[kind]
    keras_layer = make_keras()
    keras_layer.build((None,) + shape[1:])
    keras_layer.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32) for w in keras_layer.get_weights()])
    torch_layer = make_torch()
    weights = keras_layer.get_weights()
    with torch.no_grad():
        for name, index, layout in names:
            getattr(torch_layer, name).copy_(torch.from_numpy(tf_to_torch(layout, weights[index])))
    x = rng.standard_normal(shape).astype(np.float32)
    _assert_close(_torch_nhwc(torch_layer, x), keras_layer(x))


def test_batch_norm_names_both_directions(keras, rng):
    torch_bn = nn.BatchNorm2d(4, eps=1e-3).eval()
    _randomize(torch_bn, rng)
    keras_bn = keras.layers.BatchNormalization(epsilon=1e-3)
    keras_bn.build((None, 5, 5, 4))
    for torch_name, keras_name in BATCHNORM_TORCH_TO_TF.items():
        getattr(keras_bn, keras_name).assign(getattr(torch_bn, torch_name).detach().numpy())
    x = rng.standard_normal((2, 5, 5, 4)).astype(np.float32)
    _assert_close(keras_bn(x, training=False), _torch_nhwc(torch_bn, x))

    back = nn.BatchNorm2d(4, eps=1e-3).eval()
    with torch.no_grad():
        for keras_name, torch_name in BATCHNORM_TF_TO_TORCH.items():
            getattr(back, torch_name).copy_(torch.from_numpy(np.asarray(getattr(keras_bn, keras_name))))
    _assert_close(_torch_nhwc(back, x), keras_bn(x, training=False))


def test_wrong_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"conv weight in PyTorch layout must be 4-D, got shape \(3, 3\)"):
        torch_to_tf(Layout.CONV, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"depthwise.*\(C\*2, 1, kh, kw\)"):
        torch_to_tf(Layout.DEPTHWISE, np.zeros((3, 1, 3, 3)), channel_multiplier=2)
    with pytest.raises(ValueError, match="dense"):
        tf_to_torch(Layout.DENSE, np.zeros(4))
