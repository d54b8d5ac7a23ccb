"""``zoo.models.flownet2_sd.estimate_flow``: its resizing checked against independent references.

The model is replaced by a recorder that keeps the frames it is given and
returns a known random flow, so only the resizing around it is under test.

* Sizes: ``ceil(H/64)*64`` by ``ceil(W/64)*64`` (lmb-freiburg/flownet2
  ``scripts/run-flownet.py``: divisor 64, ``ADAPTED_WIDTH = ceil(width /
  divisor) * divisor``), written out below as literal numbers, with the flow
  factors ``SCALE_WIDTH = width / ADAPTED_WIDTH`` and ``SCALE_HEIGHT`` as
  literal fractions.
* Resizing, both ways: TensorFlow's ``tf.image.resize(method="bilinear",
  antialias=False)`` (half-pixel centres), an implementation independent of
  PyTorch. A control shows the comparison has power: the corner-aligned rule
  (``tf.compat.v1.image.resize_bilinear(align_corners=True)``) is far off.
* The Caffe original's ``Resample`` layer (LINEAR; ``resample_layer.cu``:
  output pixel x samples the input at ``x * fx + fy / 2 - 0.5``, fx = in/out
  width, fy = in/out height, triangle weights ``1 - |d|`` over the in-range
  taps, normalised by their sum; no antialiasing when enlarging), restated
  here in NumPy from those facts: it equals estimate_flow's input resize when
  both axes scale by the same factor, and differs when they do not (the
  Sintel case), as estimate_flow's docstring says.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.models.flownet2_sd import estimate_flow

# (H, W) -> (H64, W64), and the flow factors (W / W64, H / H64), by hand.
CASES = [
    ((436, 1024), (448, 1024), (1024 / 1024, 436 / 448)),  # MPI-Sintel
    ((100, 150), (128, 192), (150 / 192, 100 / 128)),
    ((96, 48), (128, 64), (48 / 64, 96 / 128)),  # both axes scale by 3/4
    ((65, 64), (128, 64), (64 / 64, 65 / 128)),
]


class Recorder(torch.nn.Module):
    """Stands in for FlowNet2SD: keeps its input, returns a fixed random flow of the input's size."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # float32, as estimate_flow's dtype check reads
        self.seed = seed
        self.seen: torch.Tensor | None = None
        self.returned: torch.Tensor | None = None

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.seen = frames.clone()
        batch, _, _, height, width = frames.shape
        generator = torch.Generator().manual_seed(self.seed)
        self.returned = torch.randn(batch, 2, height, width, generator=generator) * 10
        return self.returned


def _frames(height: int, width: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(0, 255, (2, 3, 2, height, width)).astype(np.float32))


def _tf_resize(tf, nchw: np.ndarray, size: tuple[int, int], align_corners: bool = False) -> np.ndarray:
    """Resize (N, C, H, W) with TensorFlow; half-pixel bilinear, or the corner-aligned rule."""
    nhwc = tf.constant(np.ascontiguousarray(nchw.transpose(0, 2, 3, 1)))
    if align_corners:
        out = tf.compat.v1.image.resize_bilinear(nhwc, size, align_corners=True)
    else:
        out = tf.image.resize(nhwc, size, method="bilinear", antialias=False)
    return out.numpy().transpose(0, 3, 1, 2)


@pytest.mark.parametrize(("size", "size64", "factors"), CASES)
def test_resizing_matches_tensorflow_half_pixel_bilinear(tf, size, size64, factors):
    (height, width), (h64, w64) = size, size64
    frames = _frames(height, width)
    model = Recorder()
    flow = estimate_flow(model, frames)

    # The model ran on frames resized to the multiples of 64.
    assert tuple(model.seen.shape) == (2, 3, 2, h64, w64)
    for t in (0, 1):
        expected = _tf_resize(tf, frames[:, :, t].numpy(), (h64, w64))
        np.testing.assert_allclose(model.seen[:, :, t].numpy(), expected, rtol=0, atol=1e-3)

    # Its flow came back resized to H x W, u scaled by W / W64 and v by H / H64.
    assert tuple(flow.shape) == (2, 2, height, width)
    expected = _tf_resize(tf, model.returned.numpy(), (height, width))
    expected *= np.array(factors, np.float32)[None, :, None, None]
    # float32 source positions in TF vs PyTorch: up to ~1e-4 on flows of ~10 px (measured); 1e-3 allowed.
    np.testing.assert_allclose(flow.numpy(), expected, rtol=0, atol=1e-3)


@pytest.mark.parametrize(("size", "size64", "factors"), CASES[:2])
def test_corner_aligned_control_is_told_apart(tf, size, size64, factors):
    """The comparison above has power: the align_corners=True rule misses by far more than its tolerance."""
    (height, width), (h64, w64) = size, size64
    frames = _frames(height, width)
    model = Recorder()
    flow = estimate_flow(model, frames)
    wrong_input = _tf_resize(tf, frames[:, :, 0].numpy(), (h64, w64), align_corners=True)
    assert np.abs(model.seen[:, :, 0].numpy() - wrong_input).max() > 1.0
    wrong_flow = _tf_resize(tf, model.returned.numpy(), (height, width), align_corners=True)
    wrong_flow *= np.array(factors, np.float32)[None, :, None, None]
    assert np.abs(flow.numpy() - wrong_flow).max() > 0.1  # 100x the tolerance


def test_multiples_of_64_run_untouched():
    frames = _frames(128, 192)
    model = Recorder()
    flow = estimate_flow(model, frames)
    assert torch.equal(model.seen, frames)
    assert torch.equal(flow, model.returned)


def _caffe_resample_matrix(n_in: int, n_out: int, f_this: float, f_other: float) -> np.ndarray:
    """(n_out, n_in) weights of Caffe's LINEAR Resample along one axis, when enlarging (no antialiasing).

    resample_layer.cu: position ``x_out * f_this + f_other / 2 - 0.5`` (f_other: the OTHER axis's
    factor), taps within 2 of it, triangle weight ``max(0, 1 - |d|)``, out-of-range taps skipped,
    normalised by the sum. The 2-D weight is the product of the two axes' weights, so it separates.
    """
    matrix = np.zeros((n_out, n_in))
    for x_out in range(n_out):
        x_in = x_out * f_this + f_other / 2 - 0.5
        for x in range(int(np.floor(x_in)) - 2, int(np.floor(x_in)) + 3):
            if 0 <= x < n_in:
                matrix[x_out, x] = max(0.0, 1.0 - abs(x_in - x))
        matrix[x_out] /= matrix[x_out].sum()
    return matrix


def _caffe_resample(nchw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    (h_in, w_in), (h_out, w_out) = nchw.shape[-2:], size
    fx, fy = w_in / w_out, h_in / h_out
    assert fx <= 1 and fy <= 1, "only enlarging is restated here"
    rows = _caffe_resample_matrix(h_in, h_out, fy, fx)
    cols = _caffe_resample_matrix(w_in, w_out, fx, fy)
    return rows @ nchw.astype(np.float64) @ cols.T


def test_input_resize_against_caffe_resample_rule():
    # Both axes scale by 3/4: Caffe's sample positions are half-pixel centres, the same rule.
    frames = _frames(96, 48)
    model = Recorder()
    estimate_flow(model, frames)
    caffe = _caffe_resample(frames[:, :, 0].numpy(), (128, 64))
    np.testing.assert_allclose(model.seen[:, :, 0].numpy(), caffe, rtol=0, atol=1e-3)

    # Sintel, 436x1024 -> 448x1024: fx = 1 but fy = 436/448, so Caffe samples columns at
    # x - 0.0134 (fy/2 - 0.5) where estimate_flow keeps them; the docstring's "not the same".
    frames = _frames(436, 1024)
    model = Recorder()
    estimate_flow(model, frames)
    caffe = _caffe_resample(frames[:, :, 0].numpy(), (448, 1024))
    # On these noise frames (0..255) that shift moves values by up to ~6.6 (measured); 0.1 is far below.
    assert np.abs(model.seen[:, :, 0].numpy() - caffe).max() > 0.1
