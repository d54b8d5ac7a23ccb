"""ONNX export (zoo.export, scripts/export_onnx.py): parity in ONNX Runtime, opset, Pad ops.

Each model is exported with weights converted from its stand-in upstream file
and run in ONNX Runtime against the PyTorch port. Skipped without onnx,
onnxscript or onnxruntime (the ``bench`` extra; CI installs it).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from parity import require_module

require_module("onnx")
require_module("onnxscript")
ort = require_module("onnxruntime")

from zoo.export import (  # noqa: E402
    MIN_OPSET,
    example_input,
    export_model,
    onnx_op_counts,
    onnx_opset,
    onnx_padding_sites,
    required_pad_ops,
)
from zoo.registry import get_model_entry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOGIT_TOL = 1e-4
FLOW_TOL = 1e-3  # pixels


@pytest.fixture(scope="module")
def converted(standins):
    """The session's converted stand-ins (the classifiers' stand-ins need TensorFlow to be written)."""
    return standins


def _weights(standins, model: str) -> Path:
    if model != "flownet2_sd":
        require_module("tensorflow")  # the stand-in graphs are written with TF's protos
    return standins.converted(model)


def _ort_run(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [list(x.shape)], "the input shape must be static"
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


# (model, size, Pad sites the padding rules need at that size)
CASES = [
    # Five stride-2 3x3 convs (Conv2d_0 and the depthwise convs of blocks 2, 4, 6, 12) see
    # even sizes, where TF SAME pads 0 before and 1 after; every other conv is symmetric.
    ("mobilenet_v1", (224, 224), 5),
    # Every conv pads symmetrically ((k-1)//2: fixed_padding and odd-kernel SAME), so ONNX Conv
    # holds it; the SAME max pool's (0, 1) on 112x112 is MaxPool's own ceil_mode, no Pad.
    ("resnet50", (224, 224), 0),
    # PyTorch-born: symmetric padding=1 convs and ConvTranspose only.
    ("flownet2_sd", (128, 192), 0),
]


@pytest.mark.parametrize("model,size,needed", CASES, ids=[c[0] for c in CASES])
def test_export_parity_opset_and_pads(converted, tmp_path, model, size, needed):
    weights = _weights(converted, model)
    net = get_model_entry(model).load("torch_builder")(weights=str(weights)).eval()
    path = export_model(model, weights, tmp_path / f"{model}.onnx", batch=2, size=size)
    assert onnx_opset(path) >= MIN_OPSET

    x = example_input(model, 2, size, seed=3)
    with torch.inference_mode():
        expected = net(x).numpy()
    got = _ort_run(path, x)
    assert got.shape == expected.shape
    diff = float(np.abs(got - expected).max())
    tolerance = FLOW_TOL if model == "flownet2_sd" else LOGIT_TOL * max(1.0, float(np.abs(expected).max()) / 10)
    assert diff <= tolerance, f"{model}: ONNX Runtime vs PyTorch max |diff| {diff:.3g} > {tolerance:.3g}"
    if model != "flownet2_sd":
        np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))

    assert required_pad_ops(net, x) == needed
    sites = onnx_padding_sites(path)
    # Each asymmetric padding appears exactly once: as a Pad node, or folded into a Conv's pads.
    assert sites["Pad"] + sites["asymmetric_pads"] == needed, sites
    assert sites["Pad"] <= needed
    counts = onnx_op_counts(path)
    if model == "resnet50":
        # The max pool's one extra cell after is ceil_mode, not an explicit -inf Pad.
        assert counts.get("Pad", 0) == 0 and counts["MaxPool"] == 1
    assert "BatchNormalization" not in counts  # the exporter folds eval-mode BN into the convs


def test_export_cli_check(converted, tmp_path, capsys):
    export_onnx = importlib.import_module("scripts.export_onnx") if (ROOT / "scripts" / "__init__.py").exists() else None
    if export_onnx is None:
        import runpy

        namespace = runpy.run_path(str(ROOT / "scripts" / "export_onnx.py"), run_name="export_onnx")
        main = namespace["main"]
    else:
        main = export_onnx.main
    weights = _weights(converted, "flownet2_sd")
    out = tmp_path / "flow.onnx"
    code = main(["flownet2_sd", "--weights", str(weights), "--out", str(out), "--size", "128x128", "--check"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert out.is_file() and "opset 18" in printed and ": ok" in printed
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "frames" and session.get_outputs()[0].name == "flow"
    assert session.get_inputs()[0].shape == [1, 3, 2, 128, 128]


def test_export_rejects_low_opset_and_bad_size(tmp_path):
    from zoo.errors import InputShapeError
    from zoo.export import export_onnx

    with pytest.raises(ValueError, match="opset"):
        export_onnx(torch.nn.Identity(), torch.zeros(1), tmp_path / "x.onnx", opset=16)
    with pytest.raises(InputShapeError, match="flownet2_sd: .*multiples of 64, got 100x128"):
        example_input("flownet2_sd", 1, (100, 128))
    with pytest.raises(InputShapeError, match="resnet50: .*>= 32, got 16x16"):
        export_model("resnet50", None, tmp_path / "r.onnx", size=(16, 16))
    assert not list(tmp_path.iterdir())


# The graphs' names (what ONNX Runtime users feed and read) and the default export sizes.
ONNX_NAMES = {"mobilenet_v1": ("input", "logits", (224, 224)), "resnet50": ("input_tensor", "logits", (224, 224)),
              "flownet2_sd": ("frames", "flow", (384, 512))}


@pytest.mark.parametrize("model", sorted(ONNX_NAMES))
def test_example_input_has_the_models_layout_range_and_default_size(model):
    x = example_input(model, 2, seed=5)
    height, width = ONNX_NAMES[model][2]
    entry = get_model_entry(model)
    expected = (2, 3, 2, height, width) if model == "flownet2_sd" else (2, 3, height, width)
    assert tuple(x.shape) == expected and x.dtype == torch.float32
    low, high = entry.input.value_range
    assert low <= float(x.min()) < float(x.max()) <= high
    assert torch.equal(x, example_input(model, 2, seed=5)) and not torch.equal(x, example_input(model, 2, seed=6))
    assert (entry.onnx.input, entry.onnx.output) == ONNX_NAMES[model][:2]
