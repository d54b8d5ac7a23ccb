"""zoo.keras.layers against the PyTorch ops they reproduce.

Every comparison: max |zoo.keras - torch| <= 1e-5 (fp32), over sweeps that
include odd sizes and sizes smaller than the kernel. Weights are drawn in
PyTorch layout and moved to Keras layout by an explicit transpose written here,
independent of zoo.layouts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

TOL = 1e-5
SIZES = [(h, (5 * h) % 17 + 1) for h in range(1, 18)] + [(h, h) for h in (1, 2, 3, 8, 9, 24, 33)]


@pytest.fixture(scope="module")
def zoo_layers(keras):
    from zoo.keras import layers

    return layers


def _nchw(x_nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))


def _assert_close(ours, ref: torch.Tensor, what: str) -> None:
    ours = np.asarray(ours)
    ref = ref.detach().numpy().transpose(0, 2, 3, 1)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != torch {ref.shape}"
    diff = float(np.abs(ours - ref).max()) if ours.size else 0.0
    assert diff <= TOL, f"{what}: max |diff| {diff:.3g} > {TOL}"


# TF convolutions do not combine stride > 1 with dilation > 1.
CONV_CASES = [
    (kernel, stride, padding, dilation)
    for kernel in (1, 2, 3, 4, 5, 7, (3, 1))
    for stride in (1, 2, 3, (2, 1))
    for padding in (0, 1, 2, 3, (1, 0))
    for dilation in (1, 2)
    if dilation == 1 or stride == 1
]
# Padding below half the kernel (see TorchConv2DTranspose).
TRANSPOSE_CASES = [
    (kernel, stride, padding)
    for kernel in (1, 2, 3, 4, 5, (4, 2))
    for stride in (1, 2, 3, (2, 1))
    for padding in (0, 1, 2)
    if 2 * padding < min(np.atleast_1d(kernel))
]


@pytest.mark.parametrize("kernel,stride,padding,dilation", CONV_CASES, ids=str)
def test_torch_conv2d_matches_torch(zoo_layers, rng, kernel, stride, padding, dilation):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    cin, cout = 3, 4
    w_oihw = (rng.standard_normal((cout, cin, kh, kw)) / np.sqrt(cin * kh * kw)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    layer = zoo_layers.TorchConv2D(cout, kernel, stride, padding, dilation)
    layer.build((None, None, None, cin))
    layer.set_weights([w_oihw.transpose(2, 3, 1, 0), bias])
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    for h, w in SIZES:
        if h + 2 * ph < dilation * (kh - 1) + 1 or w + 2 * pw < dilation * (kw - 1) + 1:
            continue  # PyTorch rejects an input smaller than the dilated kernel
        x = rng.standard_normal((1 if h % 2 else 3, h, w, cin)).astype(np.float32)
        ref = F.conv2d(_nchw(x), torch.from_numpy(w_oihw), torch.from_numpy(bias), stride, (ph, pw), dilation)
        _assert_close(layer(x), ref, f"input {h}x{w}")


@pytest.mark.parametrize("kernel,stride,padding", TRANSPOSE_CASES, ids=str)
def test_torch_conv2d_transpose_matches_torch(zoo_layers, rng, kernel, stride, padding):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    cin, cout = 3, 2
    w_iohw = (rng.standard_normal((cin, cout, kh, kw)) / np.sqrt(cin * kh * kw)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    layer = zoo_layers.TorchConv2DTranspose(cout, kernel, stride, padding)
    layer.build((None, None, None, cin))
    layer.set_weights([w_iohw.transpose(2, 3, 1, 0), bias])
    for h, w in SIZES:
        x = rng.standard_normal((1 if h % 2 else 3, h, w, cin)).astype(np.float32)
        ref = F.conv_transpose2d(_nchw(x), torch.from_numpy(w_iohw), torch.from_numpy(bias), stride, padding)
        _assert_close(layer(x), ref, f"input {h}x{w}")


def test_flownet_deconv_is_exactly_2x(zoo_layers, rng):
    layer = zoo_layers.TorchConv2DTranspose(2, 4, 2, 1)
    assert tuple(layer(np.zeros((1, 6, 8, 2), np.float32)).shape) == (1, 12, 16, 2)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("scale_factor", [1, 2, 3, 4, 1.5, 0.5, (2, 3)], ids=str)
def test_bilinear_resize_scale_factor_matches_torch(zoo_layers, rng, scale_factor, align_corners):
    layer = zoo_layers.TorchBilinearResize(scale_factor=scale_factor, align_corners=align_corners)
    for h, w in SIZES:
        if min(h, w) * min(np.atleast_1d(scale_factor)) < 1:
            continue  # PyTorch rejects an empty output
        x = rng.standard_normal((1 if h % 2 else 2, h, w, 3)).astype(np.float32)
        ref = F.interpolate(_nchw(x), scale_factor=scale_factor, mode="bilinear", align_corners=align_corners)
        _assert_close(layer(x), ref, f"input {h}x{w}")


@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_resize_size_matches_torch(zoo_layers, rng, align_corners):
    for h, w in SIZES:
        for out in [(1, 1), (h, w), (2 * h + 1, 3 * w), (max(h // 2, 1), w + 5), (37, 19)]:
            layer = zoo_layers.TorchBilinearResize(size=out, align_corners=align_corners)
            x = rng.standard_normal((1, h, w, 2)).astype(np.float32)
            ref = F.interpolate(_nchw(x), size=out, mode="bilinear", align_corners=align_corners)
            _assert_close(layer(x), ref, f"input {h}x{w} -> {out}")


def test_bilinear_resize_in_a_functional_model_with_unknown_size(keras, zoo_layers, rng):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, zoo_layers.TorchBilinearResize(scale_factor=4)(inputs))
    for h, w in [(3, 5), (6, 8)]:
        x = rng.standard_normal((1, h, w, 2)).astype(np.float32)
        ref = F.interpolate(_nchw(x), scale_factor=4, mode="bilinear", align_corners=False)
        _assert_close(model.predict(x, verbose=0), ref, f"input {h}x{w}")


@pytest.mark.parametrize("slope", [None, 0.1])
def test_leaky_relu_matches_torch(zoo_layers, rng, slope):
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    layer = zoo_layers.TorchLeakyReLU() if slope is None else zoo_layers.TorchLeakyReLU(slope)
    ref = F.leaky_relu(_nchw(x)) if slope is None else F.leaky_relu(_nchw(x), slope)
    _assert_close(layer(x), ref, f"slope {slope}")


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.TorchConv2D(4, 0),
        lambda m: m.TorchConv2D(4, 3, strides=0),
        lambda m: m.TorchConv2D(4, 3, padding=-1),
        lambda m: m.TorchConv2D(4, 3, data_format="channels_first"),
        lambda m: m.TorchConv2DTranspose(4, 4, 2, padding=2),
        lambda m: m.TorchBilinearResize(),
        lambda m: m.TorchBilinearResize(size=(4, 4), scale_factor=2),
        lambda m: m.TorchBilinearResize(scale_factor=0),
    ],
)
def test_bad_arguments_raise_value_error(zoo_layers, make):
    with pytest.raises(ValueError):
        make(zoo_layers)


def test_config_round_trip_keeps_torch_padding(zoo_layers):
    for layer in (zoo_layers.TorchConv2D(4, 3, 2, 1), zoo_layers.TorchConv2DTranspose(4, 4, 2, 1)):
        clone = type(layer).from_config(layer.get_config())
        assert clone.torch_padding == (1, 1)
