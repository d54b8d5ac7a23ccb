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
from parity import assert_matches_reference, small_valid_size  # noqa: E402
from zoo.registry import get_model_entry, list_models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def converted(standins):
    """The session's converted stand-ins (the classifiers' stand-ins need TensorFlow to be written)."""
    return standins


def _standin_needs_tensorflow(model: str) -> bool:
    """Whether ``model``'s stand-in release is a TensorFlow graph (written with TF's protos)."""
    return get_model_entry(model).upstream_graph is not None


def _weights(standins, model: str) -> Path:
    if _standin_needs_tensorflow(model):
        require_module("tensorflow")
    return standins.converted(model)


def _ort_run(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [list(x.shape)], "the input shape must be static"
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


# Per model: the size to export at and the Pad sites the padding rules need at that size.
# A model not listed is exported at its default size, and its Pad sites are checked against
# what its padding rules need there (required_pad_ops).
PAD_SITES = {
    # Five stride-2 3x3 convs (Conv2d_0 and the depthwise convs of blocks 2, 4, 6, 12) see
    # even sizes, where TF SAME pads 0 before and 1 after; every other conv is symmetric.
    "mobilenet_v1": ((224, 224), 5),
    # Every conv pads symmetrically ((k-1)//2: fixed_padding and odd-kernel SAME), so ONNX Conv
    # holds it; the SAME max pool's (0, 1) on 112x112 is MaxPool's own ceil_mode, no Pad.
    "resnet50": ((224, 224), 0),
    # PyTorch-born: symmetric padding=1 convs and ConvTranspose only.
    "flownet2_sd": ((128, 192), 0),
}
# Op counts a model's graph must have, for the models listed.
OP_COUNTS = {
    # The max pool's one extra cell after is ceil_mode, not an explicit -inf Pad.
    "resnet50": {"Pad": 0, "MaxPool": 1},
}


@pytest.mark.parametrize("model", list_models())
def test_export_parity_opset_and_pads(converted, tmp_path, model):
    entry = get_model_entry(model)
    size, needed = PAD_SITES.get(model, (tuple(entry.input.default_size), None))
    weights = _weights(converted, model)
    net = entry.builder("torch")(weights=str(weights)).eval()
    path = export_model(model, weights, tmp_path / f"{model}.onnx", batch=2, size=size)
    assert onnx_opset(path) >= MIN_OPSET

    x = torch.from_numpy(entry.input.example(2, size, seed=3))
    with torch.inference_mode():
        expected = net(x).numpy()
    got = _ort_run(path, x)
    # The model's registry tolerance (and, for a classifier, the same top-1).
    assert_matches_reference(model, got, expected, f"{model}: ONNX Runtime vs PyTorch")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [entry.onnx.input]
    assert [o.name for o in session.get_outputs()] == [entry.onnx.output]

    required = required_pad_ops(net, x)
    if needed is not None:
        assert required == needed
    sites = onnx_padding_sites(path)
    # Each asymmetric padding appears exactly once: as a Pad node, or folded into a Conv's pads.
    assert sites["Pad"] + sites["asymmetric_pads"] == required, sites
    assert sites["Pad"] <= required
    counts = onnx_op_counts(path)
    for op, count in OP_COUNTS.get(model, {}).items():
        assert counts.get(op, 0) == count, (op, counts)
    assert "BatchNormalization" not in counts  # the exporter folds eval-mode BN into the convs


# The CLI on one model: one whose stand-in needs only torch where there is one.
CLI_MODEL = next((m for m in list_models() if not _standin_needs_tensorflow(m)), list_models()[0])


def test_export_cli_check(converted, tmp_path, capsys):
    export_onnx = importlib.import_module("scripts.export_onnx") if (ROOT / "scripts" / "__init__.py").exists() else None
    if export_onnx is None:
        import runpy

        namespace = runpy.run_path(str(ROOT / "scripts" / "export_onnx.py"), run_name="export_onnx")
        main = namespace["main"]
    else:
        main = export_onnx.main
    entry = get_model_entry(CLI_MODEL)
    weights = _weights(converted, CLI_MODEL)
    out = tmp_path / f"{CLI_MODEL}.onnx"
    height, width = small_valid_size(CLI_MODEL, at_least=128)
    code = main([CLI_MODEL, "--weights", str(weights), "--out", str(out), "--size", f"{height}x{width}", "--check"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert out.is_file() and "opset 18" in printed and ": ok" in printed
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == entry.onnx.input and session.get_outputs()[0].name == entry.onnx.output
    assert tuple(session.get_inputs()[0].shape) == entry.input.shape("torch", 1, (height, width))


def test_export_rejects_low_opset_and_bad_size(tmp_path):
    from zoo.errors import InputShapeError
    from zoo.export import export_onnx

    with pytest.raises(ValueError, match="opset"):
        export_onnx(torch.nn.Identity(), torch.zeros(1), tmp_path / "x.onnx", opset=16)
    checked = 0
    for model in list_models():
        spec = get_model_entry(model).input
        if spec.size_multiple > 1:  # a size that meets the minimum but not the multiple
            side = max(spec.min_size, spec.size_multiple)
            bad = (side + spec.size_multiple // 2, side)
            with pytest.raises(InputShapeError, match=rf"{model}: .*multiples of {spec.size_multiple}, "
                                                      rf"got {bad[0]}x{bad[1]}"):
                example_input(model, 1, bad)
            checked += 1
        if spec.min_size > 1:  # a size below the minimum
            small = spec.min_size // 2
            with pytest.raises(InputShapeError, match=rf"{model}: .*>= {spec.min_size}, got {small}x{small}"):
                export_model(model, None, tmp_path / f"{model}.onnx", size=(small, small))
            checked += 1
    assert checked, "no registered model has a size rule to break"
    assert not list(tmp_path.iterdir())


# The graphs' names (what ONNX Runtime users feed and read) and the default export sizes, for the models listed.
ONNX_NAMES = {"mobilenet_v1": ("input", "logits", (224, 224)), "resnet50": ("input_tensor", "logits", (224, 224)),
              "flownet2_sd": ("frames", "flow", (384, 512))}


@pytest.mark.parametrize("model", list_models())
def test_example_input_has_the_models_layout_range_and_default_size(model):
    x = example_input(model, 2, seed=5)
    entry = get_model_entry(model)
    assert tuple(x.shape) == entry.input.shape("torch", 2) and x.dtype == torch.float32
    low, high = entry.input.value_range
    assert low <= float(x.min()) < float(x.max()) <= high
    assert torch.equal(x, example_input(model, 2, seed=5)) and not torch.equal(x, example_input(model, 2, seed=6))
    if model in ONNX_NAMES:
        input_name, output_name, (height, width) = ONNX_NAMES[model]
        assert tuple(entry.input.default_size) == (height, width)
        assert entry.input.shape("torch", 2)[-2:] == (height, width)
        assert (entry.onnx.input, entry.onnx.output) == (input_name, output_name)
