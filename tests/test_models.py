"""What every registered model must do, one test each, parametrised over ``zoo.list_models()``.

Everything here reads the registry entry: the stand-in writes the upstream
file (``entry.standin.write_upstream``) and runs the upstream reference on it
(``reference_forward``: TensorFlow executing the upstream frozen graph, or
NVIDIA's forward restated), the converter turns it into .safetensors, and the
parity bar is ``entry.tolerance``. A model's own tests (other sizes, folding,
format-specific bad files, real data) are in ``test_<model>.py``.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from parity import ROOT, assert_convert_fails, assert_matches_reference, torch_forward
from zoo.errors import FormatError, InputShapeError
from zoo.registry import get_model_entry, list_models

MODELS = list_models()
TF_GRAPH_MODELS = [m for m in MODELS if get_model_entry(m).upstream_graph is not None]


@pytest.mark.parametrize("model", MODELS)
def test_ports_match_upstream_on_real_and_random_inputs(model, standins, tf, keras):
    """Both ports on the demo's real inputs and two random valid ones, against the upstream reference."""
    entry = get_model_entry(model)
    x = np.concatenate([entry.load("demo_inputs")(entry), entry.input.example(2, seed=1, framework="keras")])
    # TensorFlow running the upstream graph, or the upstream forward restated (the stand-in's reference_forward).
    ref = entry.load("standin").reference_forward(standins.source(model), x)
    if entry.is_classifier:
        assert 0.3 < ref.std() < 30, "stand-in logits should be of realistic scale"
    else:
        assert 1.0 < float(np.abs(ref).max()) < 200, "stand-in outputs should be of realistic scale (e.g. pixels)"
    weights = standins.converted(model)
    assert_matches_reference(model, torch_forward(model, entry.builder("torch")(weights=weights), x), ref, "torch")
    keras_model = entry.builder("keras")(weights=weights)
    assert_matches_reference(model, np.asarray(keras_model(x, training=False)), ref, "keras")


@pytest.mark.parametrize("model", MODELS)
def test_conversion_metadata_and_determinism(model, standins, tmp_path):
    """The converted file names its source and its sha256, holds the name table's tensors, and converts the same twice."""
    from safetensors import safe_open

    entry = get_model_entry(model)
    source, converted = standins.source(model), standins.converted(model)
    # The stand-in writes the file the default weights tag downloads.
    assert source.name == entry.weights[0].upstream.file
    with safe_open(str(converted), "np") as f:
        meta, keys = f.metadata(), set(f.keys())
    assert meta["source_file"] == source.name
    assert meta["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert keys == {tensor.torch for tensor in entry.load("name_table")}
    again = entry.load("converter")(source, tmp_path / "again.safetensors")
    assert again.read_bytes() == converted.read_bytes()


@pytest.mark.parametrize("model", MODELS)
def test_convert_script(model, standins, tmp_path):
    """scripts/convert.py writes the same file as the converter, and the PyTorch builder loads it."""
    out = tmp_path / "cli.safetensors"
    command = [sys.executable, str(ROOT / "scripts" / "convert.py"), model, "--source", str(standins.source(model))]
    result = subprocess.run(command + ["--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    assert out.read_bytes() == standins.converted(model).read_bytes()
    assert get_model_entry(model).builder("torch")(weights=out) is not None


@pytest.mark.parametrize("model", MODELS)
def test_truncated_upstream_file_is_refused(model, standins, tmp_path):
    """The upstream file cut short: a FormatError naming the file, and no output or temporary file left."""
    data = standins.source(model).read_bytes()
    for cut in (1000, len(data) // 2, len(data) * 2 // 3):
        bad = tmp_path / f"truncated-{cut}-{standins.source(model).name}"
        bad.write_bytes(data[:cut])
        assert_convert_fails(model, bad, tmp_path / "out.safetensors", FormatError, re.escape(bad.name))


@pytest.mark.parametrize("model", TF_GRAPH_MODELS)
def test_truncated_frozen_graph_is_refused(model, standins, tmp_path):
    """The upstream frozen graph (.pb) cut short: 'not a valid GraphDef', no output left."""
    data = standins.frozen_graph(model).read_bytes()
    for cut in (len(data) // 2, len(data) * 2 // 3):
        bad = tmp_path / "truncated.pb"
        bad.write_bytes(data[:cut])
        assert_convert_fails(model, bad, tmp_path / "out.safetensors", FormatError, "truncated.pb: not a valid GraphDef")


@pytest.mark.parametrize("model", MODELS)
def test_absent_weights_file_and_keras_layout_input(model, standins, tmp_path):
    """A weights path that is not there says 'not found'; the PyTorch port given the Keras layout says which it is."""
    entry = get_model_entry(model)
    build = entry.builder("torch")
    with pytest.raises(FormatError, match="not found"):
        build(weights=tmp_path / "absent.safetensors")
    x = torch.from_numpy(entry.input.example(1, framework="keras"))
    with pytest.raises(InputShapeError, match=r"is it (NHWC|the Keras layout)"):
        build(weights=standins.converted(model))(x)
