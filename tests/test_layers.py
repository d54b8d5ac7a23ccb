"""zoo.layers against TensorFlow's own ops.

Every comparison: max |zoo - TF| <= 1e-5 (fp32), over sweeps of spatial sizes
1..33 (odd, even, smaller than the kernel, non-square), kernels 1..7 (square
and not), strides 1..3, dilation 1 and 2 where TF allows it, batch 1 and 3.
Weights are drawn in TF layout and moved to PyTorch layout by an explicit
transpose written here, independent of zoo.layouts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.errors import InputShapeError
from zoo.layers import (
    AvgPool2dSame,
    Conv2dSame,
    MaxPool2dSame,
    batch_norm_2d_tf,
    tf_same_pad,
)

TOL = 1e-5
# Heights 1..33 each twice: once square, once against a width that runs
# through 1..33 in another order (7 is coprime with 33), so odd/even and
# smaller-than-kernel occur on both axes independently.
SIZES = [(h, h) for h in range(1, 34)] + [(h, (7 * h) % 33 + 1) for h in range(1, 34)]
KERNELS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (1, 3), (3, 1), (2, 5), (7, 4)]
STRIDES = [(1, 1), (2, 2), (3, 3), (1, 2), (3, 1)]


def _nchw(x_nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))


def _nhwc(y: torch.Tensor) -> np.ndarray:
    return y.detach().numpy().transpose(0, 2, 3, 1)


def _batch(h: int) -> int:
    return 1 if h % 2 else 3


def _assert_close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != TF {ref.shape}"
    diff = float(np.abs(ours - ref).max()) if ours.size else 0.0
    assert diff <= TOL, f"{what}: max |diff| {diff:.3g} > {TOL}"


# --- tf_same_pad ------------------------------------------------------------


def test_tf_same_pad_matches_tf_explicit_padding(tf, rng):
    """TF's SAME output equals TF's own conv with our explicit (before, after) pads."""
    for k in range(1, 8):
        for s in range(1, 4):
            for d in (1, 2):
                for n in range(1, 34):
                    x = rng.standard_normal((1, n, 1, 1)).astype(np.float32)
                    w = rng.standard_normal((k, 1, 1, 1)).astype(np.float32)
                    same = tf.nn.conv2d(x, w, (s, 1), "SAME", dilations=(d, 1)).numpy()
                    before, after = tf_same_pad(n, k, s, d)
                    explicit = tf.nn.conv2d(x, w, (s, 1), [[0, 0], [before, after], [0, 0], [0, 0]], dilations=(d, 1))
                    _assert_close(explicit.numpy(), same, f"n={n} k={k} s={s} d={d}")


def test_tf_same_pad_documented_cases():
    # ResNet-50's max pool on 112x112 (3x3 stride 2 SAME): 0 before, 1 after.
    assert tf_same_pad(112, 3, 2, 1) == (0, 1)
    # Odd input, same op: symmetric.
    assert tf_same_pad(113, 3, 2, 1) == (1, 1)
    # Stride 1, even kernel: the extra cell goes after.
    assert tf_same_pad(10, 4, 1, 1) == (1, 2)


# --- Conv2dSame ---------------------------------------------------------------


@pytest.mark.parametrize("stride", STRIDES, ids=str)
@pytest.mark.parametrize("kernel", KERNELS, ids=str)
@pytest.mark.parametrize("dilation", [1, 2])
def test_conv2d_same_matches_tf_conv2d(tf, rng, kernel, stride, dilation):
    cin, cout = 3, 4
    w_hwio = (rng.standard_normal(kernel + (cin, cout)) / np.sqrt(kernel[0] * kernel[1] * cin)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    conv = Conv2dSame(cin, cout, kernel, stride, dilation)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w_hwio.transpose(3, 2, 0, 1)))
        conv.bias.copy_(torch.from_numpy(bias))
    for h, w in SIZES:
        x = rng.standard_normal((_batch(h), h, w, cin)).astype(np.float32)
        ref = tf.nn.conv2d(x, w_hwio, stride, "SAME", dilations=dilation).numpy() + bias
        with torch.no_grad():
            ours = _nhwc(conv(_nchw(x)))
        _assert_close(ours, ref, f"input {h}x{w}")


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (3, 1), (1, 2)])
@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (5, 5), (7, 7), (3, 5)], ids=str)
def test_depthwise_conv2d_same_matches_tf(tf, rng, kernel, stride, dilation, multiplier):
    # TF's depthwise op needs equal strides on both axes and stride 1 when dilated.
    channels = 3
    w_tf = (rng.standard_normal(kernel + (channels, multiplier)) / np.sqrt(kernel[0] * kernel[1])).astype(np.float32)
    conv = Conv2dSame(channels, channels * multiplier, kernel, stride, dilation, groups=channels, bias=False)
    with torch.no_grad():
        # (kh, kw, C, m) -> (C*m, 1, kh, kw): output channel c*m + j is TF's (c, j).
        conv.weight.copy_(torch.from_numpy(w_tf.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, *kernel)))
    for h, w in SIZES:
        x = rng.standard_normal((_batch(h), h, w, channels)).astype(np.float32)
        ref = tf.nn.depthwise_conv2d(x, w_tf, (1, stride, stride, 1), "SAME", dilations=(dilation, dilation)).numpy()
        with torch.no_grad():
            ours = _nhwc(conv(_nchw(x)))
        _assert_close(ours, ref, f"input {h}x{w}")


@pytest.mark.parametrize("groups", [1, 3], ids=["dense", "depthwise"])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 3)], ids=str)
@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (4, 4), (7, 7), (3, 5)], ids=str)
def test_wide_kernel_conv2d_same_matches_tf(tf, rng, monkeypatch, kernel, stride, groups):
    """zoo.fold's pad-free form of Conv2dSame (a zero leading tap + symmetric padding) is still TF SAME."""
    from zoo.fold import Conv2dSameWideKernel

    cin = cout = 3
    w_tf = (rng.standard_normal(kernel + (cin, cout // groups if groups == 1 else 1))
            / np.sqrt(kernel[0] * kernel[1])).astype(np.float32)
    conv = Conv2dSame(cin, cout, kernel, stride, groups=groups, bias=False).requires_grad_(False)
    with torch.no_grad():
        if groups == 1:  # HWIO -> OIHW
            conv.weight.copy_(torch.from_numpy(w_tf.transpose(3, 2, 0, 1)))
        else:  # (kh, kw, C, 1) -> (C, 1, kh, kw)
            conv.weight.copy_(torch.from_numpy(w_tf.transpose(2, 3, 0, 1)))
    wide = Conv2dSameWideKernel.from_conv(conv)
    pads = _count_pads(monkeypatch)
    for h, w in SIZES:
        x = rng.standard_normal((_batch(h), h, w, cin)).astype(np.float32)
        if groups == 1:
            ref = tf.nn.conv2d(x, w_tf, stride, "SAME").numpy()
        else:
            ref = tf.nn.depthwise_conv2d(x, w_tf, (1, *stride, 1), "SAME").numpy()
        with torch.inference_mode():
            ours = _nhwc(wide(_nchw(x)))
        _assert_close(ours, ref, f"input {h}x{w}")
    if stride != (1, 1) and kernel != (1, 1):
        assert pads == [], "the wide-kernel form must not pad the input"


def _count_pads(monkeypatch) -> list:
    calls: list = []
    original = torch.nn.functional.pad

    def counting_pad(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else kwargs.get("pad"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "pad", counting_pad)
    return calls


def test_conv2d_same_symmetric_case_is_plain_conv(monkeypatch):
    calls = _count_pads(monkeypatch)
    conv = Conv2dSame(2, 2, 3, stride=1)
    assert conv.padding == (1, 1)
    conv_dilated = Conv2dSame(2, 2, (5, 3), stride=1, dilation=2)
    assert conv_dilated.padding == (4, 2)
    for n in (5, 6):
        conv(torch.zeros(1, 2, n, n))
        conv_dilated(torch.zeros(1, 2, n, n))
    assert calls == [], "a stride-1 odd-kernel SAME conv must not call F.pad"


def test_conv2d_same_asymmetric_case_is_one_pad(monkeypatch):
    calls = _count_pads(monkeypatch)
    conv = Conv2dSame(2, 2, 3, stride=2)
    conv(torch.zeros(1, 2, 112, 112))
    assert calls == [(0, 1, 0, 1)]
    even_kernel = Conv2dSame(2, 2, 4, stride=1)
    even_kernel(torch.zeros(1, 2, 9, 9))
    assert calls[1:] == [(1, 2, 1, 2)]


# --- pooling ------------------------------------------------------------------

POOL_KERNELS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (7, 7), (2, 3), (5, 1), (3, 6)]


@pytest.mark.parametrize("stride", STRIDES, ids=str)
@pytest.mark.parametrize("kernel", POOL_KERNELS, ids=str)
@pytest.mark.parametrize("all_negative", [False, True], ids=["normal", "all_negative"])
def test_max_pool2d_same_matches_tf(tf, rng, kernel, stride, all_negative):
    pool = MaxPool2dSame(kernel, stride)
    for h, w in SIZES:
        x = rng.standard_normal((_batch(h), h, w, 2)).astype(np.float32)
        if all_negative:
            # A zero-padded max would return 0 at the borders here.
            x = -np.abs(x) - 1.0
        ref = tf.nn.max_pool2d(x, kernel, stride, "SAME").numpy()
        _assert_close(_nhwc(pool(_nchw(x))), ref, f"input {h}x{w}")


@pytest.mark.parametrize("stride", STRIDES, ids=str)
@pytest.mark.parametrize("kernel", POOL_KERNELS, ids=str)
def test_avg_pool2d_same_matches_tf(tf, rng, kernel, stride):
    pool = AvgPool2dSame(kernel, stride)
    for h, w in SIZES:
        x = (rng.standard_normal((_batch(h), h, w, 2)) + 3.0).astype(np.float32)
        ref = tf.nn.avg_pool2d(x, kernel, stride, "SAME").numpy()
        _assert_close(_nhwc(pool(_nchw(x))), ref, f"input {h}x{w}")


# --- batch norm -----------------------------------------------------------------


def test_tf_fused_batch_norm_epsilon_facts(tf):
    """Which epsilon floor applies where, settled against TensorFlow itself.

    The ops FusedBatchNorm and FusedBatchNormV3 compute with their epsilon attr
    as given, 1e-6 included; TF 2's wrapper tf.compat.v1.nn.fused_batch_norm
    (tf.nn has none in TF 2) neither raises it when computing nor when storing
    it in the node. Only TF 1.x's wrapper raised values below 1.001e-5 while
    building the node (tensorflow/python/ops/nn_impl.py, "min_epsilon =
    1.001e-5"), which TF 2 cannot run, so that rule is written out here:
    zoo.layers.tf1_fused_bn_epsilon applies it, and only when asked.
    """
    from zoo.layers import tf1_fused_bn_epsilon, tf_fused_bn_epsilon

    variance = np.array([1e-6], np.float32)  # outputs for 1e-6 / 1e-5 / 1.001e-5 differ by > 1e-4
    x = np.ones((1, 2, 2, 1), np.float32)
    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)

    def expected(epsilon: float) -> float:
        return float(1.0 / np.sqrt(np.float64(variance[0]) + np.float32(epsilon)))

    for epsilon in (1e-6, 1e-5):
        args = dict(x=x, scale=one, offset=zero, mean=zero, variance=variance, epsilon=epsilon, is_training=False)
        outputs = {
            "FusedBatchNorm": tf.raw_ops.FusedBatchNorm(**args)[0],
            "FusedBatchNormV3": tf.raw_ops.FusedBatchNormV3(**args)[0],
            "compat.v1.nn.fused_batch_norm": tf.compat.v1.nn.fused_batch_norm(
                x, one, zero, zero, variance, epsilon=epsilon, is_training=False
            )[0],
        }
        for name, y in outputs.items():
            got = float(np.asarray(y).reshape(-1)[0])
            assert got == pytest.approx(expected(epsilon), rel=1e-5), f"{name} epsilon {epsilon}"
            if epsilon < 1.001e-5:
                assert got != pytest.approx(expected(1.001e-5), rel=1e-4), f"{name} applied a floor"
        with tf.Graph().as_default() as graph:
            tf.compat.v1.nn.fused_batch_norm(tf.constant(x), one, zero, zero, variance, epsilon=epsilon, is_training=False)
        stored = [n.attr["epsilon"].f for n in graph.as_graph_def().node if n.op.startswith("FusedBatchNorm")]
        assert stored == [pytest.approx(float(np.float32(epsilon)), rel=1e-7)], "TF 2's wrapper stores epsilon unchanged"
        # zoo: the given (stored) epsilon exactly; TF 1.x's building floor only on request.
        assert tf_fused_bn_epsilon(epsilon) == epsilon
        assert batch_norm_2d_tf(3, epsilon=epsilon).eps == epsilon
        assert tf1_fused_bn_epsilon(epsilon) == max(epsilon, 1.001e-5)


@pytest.mark.parametrize("epsilon", [1e-6, 1e-5, 1.001e-5, 1e-3])
def test_batch_norm_tf_matches_fused_batch_norm(tf, rng, epsilon):
    # batch_norm_2d_tf is given what the graph's node stores and computes with
    # exactly that, below TF 1.x's 1.001e-5 too (see the test above).
    graph_epsilon = epsilon
    channels = 5
    x = rng.standard_normal((2, 6, 7, channels)).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    beta = rng.standard_normal(channels).astype(np.float32)
    mean = rng.standard_normal(channels).astype(np.float32)
    # Variances comparable to epsilon, so a wrong epsilon shows.
    variance = rng.uniform(1e-6, 3e-5, channels).astype(np.float32)
    ref = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=gamma, offset=beta, mean=mean, variance=variance, epsilon=graph_epsilon, is_training=False
    )[0].numpy()
    bn = batch_norm_2d_tf(channels, epsilon=epsilon).eval()
    with torch.no_grad():
        for name, value in (("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", variance)):
            getattr(bn, name).copy_(torch.from_numpy(value))
        ours = _nhwc(bn(_nchw(x)))
    scale = float(np.abs(ref).max())
    diff = float(np.abs(ours - ref).max())
    assert diff <= TOL * max(scale, 1.0), f"epsilon {epsilon}: max |diff| {diff:.3g} (output scale {scale:.3g})"


def test_batch_norm_tf_momentum_matches_keras(keras, rng):
    """One training step moves the running mean as Keras moves its moving mean."""
    channels = 4
    x = (rng.standard_normal((8, 5, 5, channels)) * 2 + 1).astype(np.float32)
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    keras_bn(x, training=True)
    bn = batch_norm_2d_tf(channels, epsilon=1e-3, decay=0.9).train()
    bn(_nchw(x))
    np.testing.assert_allclose(bn.running_mean.numpy(), keras_bn.moving_mean.numpy(), atol=TOL)


# --- bad arguments and inputs ---------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv2dSame(3, 4, 0),
        lambda: Conv2dSame(3, 4, 3, stride=0),
        lambda: Conv2dSame(3, 4, 3, stride=-1),
        lambda: Conv2dSame(3, 4, 3, dilation=0),
        lambda: Conv2dSame(3, 4, 4, groups=2),
        lambda: Conv2dSame(4, 6, 3, groups=4),
        lambda: Conv2dSame(3, 4, (3, 3, 3)),
        lambda: MaxPool2dSame(3, 0),
        lambda: AvgPool2dSame(0),
        lambda: batch_norm_2d_tf(4, epsilon=0.0),
        lambda: tf_same_pad(5, 3, 0, 1),
    ],
)
def test_bad_arguments_raise_value_error(make):
    with pytest.raises(ValueError, match=r"must be|divisible"):
        make()


@pytest.mark.parametrize("layer", [Conv2dSame(3, 4, 3, 2), MaxPool2dSame(3, 2), AvgPool2dSame(3, 2)])
def test_three_d_input_is_rejected(layer):
    with pytest.raises(InputShapeError, match=r"4-D NCHW.*\(3, 8, 8\)"):
        layer(torch.zeros(3, 8, 8))


def test_nhwc_input_is_named():
    with pytest.raises(InputShapeError, match="NHWC"):
        Conv2dSame(3, 4, 3)(torch.zeros(1, 8, 8, 3))
