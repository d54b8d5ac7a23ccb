"""The building blocks at work: ``python -m zoo.demo --layers``.

Each zoo layer against the other framework's own op on random inputs at odd
and even sizes, next to the naive port that the layer replaces, with the max
|diff| of each. Needs the ``keras`` extra (TensorFlow is the reference).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

TOLERANCE = 1e-5


@dataclass
class Row:
    block: str
    reference: str
    size: str
    exact: bool  # False: the naive port, shown for contrast and expected to differ
    compute: Callable[[], tuple[np.ndarray, np.ndarray]]


def _rows(rng: np.random.Generator) -> list[Row]:
    import tensorflow as tf
    import torch
    import torch.nn.functional as F
    from torch import nn

    from zoo.keras import layers as keras_layers
    from zoo.layers import AvgPool2dSame, Conv2dSame, MaxPool2dSame, batch_norm_2d_tf
    from zoo.layouts import Layout, torch_to_tf

    def nchw(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def nhwc(y: torch.Tensor) -> np.ndarray:
        return y.detach().numpy().transpose(0, 2, 3, 1)

    def conv_same(layer: nn.Conv2d, size: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        def run() -> tuple[np.ndarray, np.ndarray]:
            x = rng.standard_normal((1, size, size, layer.in_channels)).astype(np.float32)
            weight = layer.weight.detach().numpy()
            if layer.groups == 1:
                ref = tf.nn.conv2d(x, torch_to_tf(Layout.CONV, weight), layer.stride, "SAME")
            else:
                kernel = torch_to_tf(Layout.DEPTHWISE, weight)
                ref = tf.nn.depthwise_conv2d(x, kernel, (1, *layer.stride, 1), "SAME")
            with torch.no_grad():
                return nhwc(layer(nchw(x))), ref.numpy()

        return run

    def pool_same(layer: nn.Module, tf_op: Callable, size: int, negative: bool) -> Callable:
        def run() -> tuple[np.ndarray, np.ndarray]:
            x = rng.standard_normal((1, size, size, 8)).astype(np.float32)
            if negative:
                x = -np.abs(x) - 1
            return nhwc(layer(nchw(x))), tf_op(x, 3, 2, "SAME").numpy()

        return run

    def batch_norm(layer: nn.BatchNorm2d) -> Callable:
        def run() -> tuple[np.ndarray, np.ndarray]:
            x = rng.standard_normal((1, 16, 16, 8)).astype(np.float32)
            # Variances near epsilon, where a wrong epsilon shows.
            variance = rng.uniform(1e-6, 3e-5, 8).astype(np.float32)
            zeros, ones = np.zeros(8, np.float32), np.ones(8, np.float32)
            # What a TF 1.x graph built with epsilon=1e-5 stores: 1.001e-5.
            ref = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=ones, offset=zeros, mean=zeros, variance=variance, epsilon=1.001e-5, is_training=False
            )[0]
            layer.eval().running_var.copy_(torch.from_numpy(variance))
            with torch.no_grad():
                return nhwc(layer(nchw(x))), ref.numpy()

        return run

    def keras_vs_torch(keras_layer, torch_fn: Callable, size: int, channels: int) -> Callable:
        def run() -> tuple[np.ndarray, np.ndarray]:
            x = rng.standard_normal((1, size, size, channels)).astype(np.float32)
            with torch.no_grad():
                return np.asarray(keras_layer(x)), nhwc(torch_fn(nchw(x)))

        return run

    torch.manual_seed(0)
    conv = Conv2dSame(8, 16, 3, stride=2, bias=False)
    depthwise = Conv2dSame(8, 8, 3, stride=2, groups=8, bias=False)
    naive = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)

    weight = (rng.standard_normal((16, 8, 3, 3)) / np.sqrt(72)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    t_weight, t_bias = torch.from_numpy(weight), torch.from_numpy(bias)
    torch_conv = keras_layers.TorchConv2D(16, 3, 2, 1)
    torch_conv.build((None, None, None, 8))
    torch_conv.set_weights([torch_to_tf(Layout.CONV, weight), bias])
    import keras

    keras_same = keras.layers.Conv2D(16, 3, 2, padding="same")
    keras_same.build((None, None, None, 8))
    keras_same.set_weights([torch_to_tf(Layout.CONV, weight), bias])
    deconv_weight = (rng.standard_normal((8, 4, 4, 4)) / np.sqrt(128)).astype(np.float32)
    deconv = keras_layers.TorchConv2DTranspose(4, 4, 2, 1)
    deconv.build((None, None, None, 8))
    deconv.set_weights([torch_to_tf(Layout.CONV_TRANSPOSE, deconv_weight), np.zeros(4, np.float32)])
    resize = keras_layers.TorchBilinearResize(scale_factor=4)

    def torch_resize(x):
        return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)

    def tf_resize_layer(x):
        return tf.image.resize(x, (x.shape[1] * 4, x.shape[2] * 4), method="bilinear")

    return [
        Row("Conv2dSame 3x3 s2", "tf.nn.conv2d SAME", "224x224", True, conv_same(conv, 224)),
        Row("Conv2dSame 3x3 s2", "tf.nn.conv2d SAME", "225x225", True, conv_same(conv, 225)),
        Row("nn.Conv2d(padding=1) s2 (naive)", "tf.nn.conv2d SAME", "224x224", False, conv_same(naive, 224)),
        Row("Conv2dSame depthwise 3x3 s2", "tf.nn.depthwise_conv2d SAME", "112x112", True, conv_same(depthwise, 112)),
        Row(
            "MaxPool2dSame 3x3 s2",
            "tf.nn.max_pool2d SAME",
            "112x112, x<0",
            True,
            pool_same(MaxPool2dSame(3, 2), tf.nn.max_pool2d, 112, True),
        ),
        Row(
            "nn.MaxPool2d(3, 2, padding=1) (naive)",
            "tf.nn.max_pool2d SAME",
            "112x112, x<0",
            False,
            pool_same(nn.MaxPool2d(3, 2, padding=1), tf.nn.max_pool2d, 112, True),
        ),
        Row(
            "AvgPool2dSame 3x3 s2",
            "tf.nn.avg_pool2d SAME",
            "56x56",
            True,
            pool_same(AvgPool2dSame(3, 2), tf.nn.avg_pool2d, 56, False),
        ),
        Row(
            "batch_norm_2d_tf(eps=1.001e-5)",
            "FusedBatchNorm eps 1.001e-5",
            "16x16",
            True,
            batch_norm(batch_norm_2d_tf(8, epsilon=1.001e-5)),
        ),
        Row(
            "nn.BatchNorm2d(eps=1e-5) (naive)",
            "FusedBatchNorm eps 1.001e-5",
            "16x16",
            False,
            batch_norm(nn.BatchNorm2d(8, eps=1e-5)),
        ),
        Row(
            "zoo.keras TorchConv2D 3x3 s2 p1",
            "F.conv2d padding=1",
            "224x224",
            True,
            keras_vs_torch(torch_conv, lambda x: F.conv2d(x, t_weight, t_bias, 2, 1), 224, 8),
        ),
        Row(
            "keras Conv2D 'same' s2 (naive)",
            "F.conv2d padding=1",
            "224x224",
            False,
            keras_vs_torch(keras_same, lambda x: F.conv2d(x, t_weight, t_bias, 2, 1), 224, 8),
        ),
        Row(
            "zoo.keras TorchConv2DTranspose 4/2/1",
            "F.conv_transpose2d",
            "48x64",
            True,
            keras_vs_torch(deconv, lambda x: F.conv_transpose2d(x, torch.from_numpy(deconv_weight), None, 2, 1), 48, 8),
        ),
        Row(
            "zoo.keras TorchBilinearResize x4",
            "F.interpolate bilinear",
            "96x96",
            True,
            keras_vs_torch(resize, torch_resize, 96, 2),
        ),
        Row(
            "zoo.keras TorchLeakyReLU(0.1)",
            "F.leaky_relu(0.1)",
            "32x32",
            True,
            keras_vs_torch(keras_layers.TorchLeakyReLU(0.1), lambda x: F.leaky_relu(x, 0.1), 32, 4),
        ),
    ]


def main(seed: int = 0) -> int:
    """Print the building-block parity table; non-zero if an exact block misses the tolerance."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        rows = _rows(np.random.default_rng(seed))
    except ImportError as error:
        print(f"zoo.demo needs TensorFlow as the reference: {error}", file=sys.stderr)
        return 2

    header = f"{'block':40} {'reference':30} {'input':13} {'max |diff|':>10}  {'verdict':8} {'ms':>6}"
    print(header)
    print("-" * len(header))
    failures = 0
    for row in rows:
        start = time.perf_counter()
        ours, ref = row.compute()
        elapsed = (time.perf_counter() - start) * 1e3
        if ours.shape != ref.shape:
            diff_text, ok = f"shape {ours.shape[1:3]}", False
        else:
            # Relative to the output's scale where it is large (BN on tiny variances).
            diff = float(np.abs(ours - ref).max()) / max(1.0, float(np.abs(ref).max()))
            diff_text, ok = f"{diff:.2e}", diff <= TOLERANCE
        if row.exact:
            verdict = "exact" if ok else "FAIL"
            failures += not ok
        else:
            verdict = "differs" if not ok else "agrees?"
        print(f"{row.block:40} {row.reference:30} {row.size:13} {diff_text:>10}  {verdict:8} {elapsed:6.1f}")
    print(f"\nexact: max |diff| <= {TOLERANCE:g} (relative to the output's scale where it exceeds 1) "
          "against the other framework's op;\n"
          "(naive) rows show the usual port, which is not exact.")
    return 1 if failures else 0

