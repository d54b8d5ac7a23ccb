"""FlowNet2-SD: an independent reference forward vs the PyTorch port vs the Keras port.

The reference, zoo.standins.flownet2_sd.nvidia_forward, is written directly
from NVIDIA's FlowNet2SD facts with torch.nn.functional calls on the
checkpoint's own state_dict; it shares no code with the port. Inputs are real
image pairs: skimage's stereo_motorcycle, and, where ../shared is present,
MPI-Sintel (436x1024 cropped to 384x1024, as NVIDIA's loader does) and
FlyingChairs (384x512). The bar is the registry entry's tolerance (absolute,
in pixels; flows are O(10) px), on the eval output and the five training
outputs. The tests every model shares (parity on the demo pair and random
frames, the converter's metadata, determinism and script, truncated files)
are in tests/test_models.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoo
from parity import assert_convert_fails, assert_matches_reference, require_shared
from zoo.errors import FormatError, InputShapeError, TensorShapeError
from zoo.standins.flownet2_sd import nvidia_forward

MODEL = "flownet2_sd"


@pytest.fixture(scope="module")
def checkpoint(standins) -> Path:
    return standins.source(MODEL)


@pytest.fixture(scope="module")
def state(checkpoint) -> dict:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def converted(checkpoint, standins) -> Path:
    return standins.converted(MODEL)


@pytest.fixture(scope="module")
def torch_model(converted):
    return zoo.flownet2_sd(weights=converted)


@pytest.fixture(scope="module")
def keras_model(converted, keras):
    return zoo.keras.flownet2_sd(weights=converted)


def _frames(pairs: list[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
    """[(frame0 HxWx3 RGB, frame1)] -> (B, 3, 2, H, W) float in [0, 255]."""
    stacked = np.stack([np.stack(pair) for pair in pairs]).astype(np.float32)  # B, 2, H, W, 3
    return torch.from_numpy(np.ascontiguousarray(stacked.transpose(0, 4, 1, 2, 3)))


def _check_pairs(state, torch_model, keras_model, frames: torch.Tensor, what: str) -> None:
    with torch.no_grad():
        ref = nvidia_forward(state, frames).numpy()
        ours = torch_model(frames).numpy()
    assert 1.0 < float(np.abs(ref).max()) < 200, "stand-in flows should be of realistic scale (pixels)"
    assert_matches_reference(MODEL, ours, ref, f"torch {what}")
    keras_out = np.asarray(keras_model.predict(frames.numpy().transpose(0, 2, 3, 4, 1), batch_size=2, verbose=0))
    assert_matches_reference(MODEL, keras_out.transpose(0, 3, 1, 2), ref, f"keras {what}")


def _motorcycle() -> tuple[np.ndarray, np.ndarray]:
    skimage_data = pytest.importorskip("skimage.data")
    left, right, _ = skimage_data.stereo_motorcycle()
    # 500x741 -> a 384x640 crop (multiples of 64).
    return left[58:442, 50:690], right[58:442, 50:690]


def test_training_outputs_match_reference(state, converted):
    frames = _frames([_motorcycle()])
    model = zoo.flownet2_sd(weights=converted).train()
    with torch.no_grad():
        ours = model(frames)
        ref = nvidia_forward(state, frames, training=True)
    assert len(ours) == 5
    for level, (a, b) in zip((2, 3, 4, 5, 6), zip(ours, ref)):
        # Unscaled (flow / 20): the same absolute bound is 20x stricter here.
        assert_matches_reference(MODEL, a.numpy(), b.numpy(), f"flow{level}")


def test_sintel_and_chairs_pairs(state, torch_model, keras_model):
    import cv2

    flow_dir = require_shared() / "data" / "flow"
    chairs = []
    for first in sorted((flow_dir / "chairs").glob("*-img0.ppm")):
        second = first.with_name(first.name.replace("img0", "img1"))
        chairs.append(tuple(cv2.imread(str(p))[..., ::-1] for p in (first, second)))
    assert len(chairs) == 9 and chairs[0][0].shape == (384, 512, 3)
    sintel = []
    for folder in sorted(p for p in (flow_dir / "sintel").iterdir() if p.is_dir()):
        pair = tuple(cv2.imread(str(folder / name))[..., ::-1] for name in ("img0.png", "img1.png"))
        assert pair[0].shape == (436, 1024, 3)
        # NVIDIA's MpiSintel loader: StaticCenterCrop to a multiple of 64, 384x1024.
        top = (436 - 384) // 2
        sintel.append(tuple(image[top : top + 384] for image in pair))
    assert len(sintel) == 9
    for name, pairs in (("FlyingChairs", chairs), ("MPI-Sintel", sintel)):
        for start in range(0, len(pairs), 3):
            _check_pairs(state, torch_model, keras_model, _frames(pairs[start : start + 3]), name)


def test_sizes_must_be_multiples_of_64_and_estimate_flow_handles_any(torch_model):
    from zoo.models.flownet2_sd import estimate_flow

    frames = _frames([_motorcycle()])
    with pytest.raises(InputShapeError, match="multiples of 64.*estimate_flow"):
        torch_model(frames[..., :380, :])
    with pytest.raises(InputShapeError, match=r"\(B, 3, 2, H, W\)"):
        torch_model(frames[:, :, 0])
    # A 384x640 crop needs no resize: estimate_flow is then the model itself.
    with torch.no_grad():
        np.testing.assert_array_equal(estimate_flow(torch_model, frames).numpy(), torch_model(frames).numpy())
        # Any other size: run-flownet.py's recipe, restated here on the reference forward.
        odd = frames[..., :377, :601]
        ours = estimate_flow(torch_model, odd)
        resized = F.interpolate(odd.reshape(1, 6, 377, 601), size=(384, 640), mode="bilinear", align_corners=False)
        flow = nvidia_forward(torch_model.state_dict(), resized.reshape(1, 3, 2, 384, 640))
        flow = F.interpolate(flow, size=(377, 601), mode="bilinear", align_corners=False)
        ref = flow * torch.tensor([601 / 640, 377 / 384]).reshape(1, 2, 1, 1)
    assert_matches_reference(MODEL, ours.numpy(), ref.numpy(), "estimate_flow 377x601")


class Payload:
    """A class an attacker could make torch.load execute on unpickling."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_checkpoint_with_pickled_object_is_refused(tmp_path, capsys):
    from zoo.standins.flownet2_sd import write_checkpoint

    evil = write_checkpoint(tmp_path / "evil.pth.tar", extra={"arch": Payload()})
    assert_convert_fails(MODEL, evil, tmp_path / "out.safetensors", FormatError, "refusing to load")
    assert "unpickled!" not in capsys.readouterr().out


def test_bad_checkpoints(tmp_path, state):
    bad_state = dict(state)
    del bad_state["inter_conv3.0.bias"]
    torch.save({"epoch": 0, "state_dict": bad_state}, tmp_path / "missing.pth.tar")
    assert_convert_fails(MODEL, tmp_path / "missing.pth.tar", tmp_path / "o.safetensors", FormatError, "missing tensor.*inter_conv3.0.bias")
    bad_state = dict(state)
    bad_state["deconv4.0.weight"] = torch.zeros(1026, 128, 4, 4)
    torch.save({"epoch": 0, "state_dict": bad_state}, tmp_path / "shape.pth.tar")
    assert_convert_fails(MODEL, tmp_path / "shape.pth.tar", tmp_path / "o.safetensors", TensorShapeError, r"deconv4.0.weight has shape \(1026, 128, 4, 4\)")
    torch.save([1, 2], tmp_path / "list.pth.tar")
    assert_convert_fails(MODEL, tmp_path / "list.pth.tar", tmp_path / "o.safetensors", FormatError, "state_dict")


def test_registry_entry():
    assert MODEL in zoo.list_models()
    assert zoo.get_model_entry(MODEL).reference_metric.get("epe") is None


def test_caffe_weights_convert_to_the_same_model(checkpoint, converted, state, tmp_path):
    """lmb-freiburg's Caffe layout: Caffe names, and conv0 reading BGR frames."""
    import h5py
    from safetensors.numpy import load_file

    from zoo.convert.flownet2_sd import convert
    from zoo.standins.flownet2_sd import write_caffe_h5

    h5_path = write_caffe_h5(tmp_path / "FlowNet2-SD_weights.caffemodel.h5", seed=0)
    from_caffe = load_file(str(convert(h5_path, tmp_path / "caffe.safetensors")))
    from_nvidia = load_file(str(converted))
    assert from_caffe.keys() == from_nvidia.keys()
    assert all(np.array_equal(from_caffe[k], from_nvidia[k]) for k in from_nvidia)
    # The flip in behaviour: the Caffe weights, used as they are, on BGR frames,
    # give the flow the converted model gives on RGB frames.
    with h5py.File(h5_path) as h5:
        conv0 = torch.from_numpy(np.asarray(h5["data/conv0/0"]))
    caffe_state = dict(state, **{"conv0.0.weight": conv0})
    frames = _frames([tuple(image[:128, :192] for image in _motorcycle())])
    with torch.no_grad():
        ours = zoo.flownet2_sd(weights=tmp_path / "caffe.safetensors")(frames)
        caffe = nvidia_forward(caffe_state, frames.flip(1))
    assert_matches_reference(MODEL, ours.numpy(), caffe.numpy(), "Caffe BGR vs converted RGB")


def test_caffe_file_missing_a_blob(tmp_path):
    import h5py

    from zoo.standins.flownet2_sd import write_caffe_h5

    h5_path = write_caffe_h5(tmp_path / "w.caffemodel.h5", seed=0)
    with h5py.File(h5_path, "a") as h5:
        del h5["data/Convolution3/1"]
    assert_convert_fails(MODEL, h5_path, tmp_path / "o.safetensors", FormatError, "Convolution3 lacks blob 1")
