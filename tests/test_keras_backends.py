"""zoo.keras on the JAX and torch backends, without TensorFlow, against the upstream references.

Keras fixes its backend when first imported, so each backend runs in its own
process (tests/keras_backend_worker.py) with ``import tensorflow`` made to
fail. The references are computed here, independently of zoo.keras: TF runs
the stand-in upstream frozen graphs (MobileNet-v1's release member,
``resnet50_v1.pb``), and NVIDIA's FlowNet2SD forward restated on the
checkpoint's state_dict (zoo.standins.flownet2_sd.nvidia_forward) gives the
flow. Tolerances (in the worker): logits max |diff| <= 1e-4 (relative beyond
logits of 10); flow max |diff| <= 1e-4 times max(1, max |flow|).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parity import ROOT, require_module

WORKER = Path(__file__).with_name("keras_backend_worker.py")


@pytest.fixture(scope="module")
def cases(tf, keras, standins, tmp_path_factory) -> Path:
    """inputs, references and weights paths for the three models, in one .npz."""
    import torch

    from zoo.standins import mobilenet_v1, resnet50
    from zoo.standins.flownet2_sd import nvidia_forward

    rng = np.random.default_rng(7)
    arrays = {}
    # MobileNet-v1: the release's frozen graph, NHWC in [-1, 1].
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(standins.mobilenet_frozen_pb().read_bytes())
    x = rng.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    arrays["mobilenet_v1"] = (x, mobilenet_v1.run_graph(graph, x))
    # ResNet-50: resnet50_v1.pb, MLPerf pre_process_vgg range.
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(standins.resnet50_pb().read_bytes())
    x = rng.uniform(-124, 152, (1, 224, 224, 3)).astype(np.float32)
    arrays["resnet50"] = (x, resnet50.run_graph(graph, x))
    # FlowNet2-SD: one 64x128 pair, a shifted random texture so the flow is not trivial.
    state = torch.load(standins.flownet2_sd_checkpoint(), map_location="cpu", weights_only=True)["state_dict"]
    texture = rng.uniform(0, 255, (72, 136, 3)).astype(np.float32)
    frames = np.stack([texture[:64, :128], texture[5:69, 3:131]])[None]  # (1, 2, 64, 128, 3)
    with torch.no_grad():
        flow = nvidia_forward(state, torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 4, 1, 2, 3))))
    arrays["flownet2_sd"] = (frames, flow.numpy().transpose(0, 2, 3, 1))

    out = {}
    for model, (x, ref) in arrays.items():
        assert np.isfinite(ref).all() and float(np.abs(ref).max()) > 0.1, f"{model}: degenerate reference"
        out[f"{model}_input"], out[f"{model}_reference"] = x, ref
        out[f"{model}_weights"] = np.array(str(standins.converted(model)))
    path = tmp_path_factory.mktemp("keras_backends") / "cases.npz"
    np.savez(path, **out)
    return path


BACKENDS = ("jax", "torch")


@pytest.fixture(scope="module")
def workers(cases) -> dict[str, subprocess.Popen]:
    """One worker per installed backend, started together: they overlap their imports and compilations."""
    started = {}
    for backend in BACKENDS:
        if backend == "jax" and importlib.util.find_spec("jax") is None:
            continue  # the test itself skips, naming the reason
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
        started[backend] = subprocess.Popen([sys.executable, str(WORKER), str(cases)], stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    yield started
    for process in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("backend", BACKENDS)
def test_models_match_upstream_without_tensorflow(backend, workers):
    """Build, load the converted weights, run and check inputs on one backend, with TensorFlow unimportable."""
    if backend == "jax":
        require_module("jax")
    stdout, stderr = workers[backend].communicate(timeout=600)
    assert workers[backend].returncode == 0, f"{backend} worker failed:\n{stdout}\n{stderr[-4000:]}"
    assert stdout.strip().splitlines()[-1] == f"ok {backend}"
    assert "float64" not in stderr, f"{backend}: a float64 request was truncated:\n{stderr[-2000:]}"


def test_missing_backend_names_its_extra():
    """KERAS_BACKEND=jax without jax: the ImportError names zoo[jax]."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'jax':\n"
        "            raise ImportError(f'blocked for this test: {name}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import zoo.keras\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "pip install 'zoo[jax]'" in result.stdout, result.stdout


def test_keras_layer_names_map_back_to_pytorch_keys():
    """Every Keras weight of every name table names its PyTorch tensor: layer name back to module, plus the leaf."""
    from zoo.errors import ArgumentError
    from zoo.layouts import BATCHNORM_TF_TO_TORCH
    from zoo.registry import list_models, name_table
    from zoo.specs import keras_layer_name, torch_module_path

    MODELS = list_models()

    leaves = {"kernel": "weight", "bias": "bias", **BATCHNORM_TF_TO_TORCH}
    for model in MODELS:
        for spec in name_table(model):
            assert "." not in spec.keras_name and "/" not in spec.keras_layer, spec
            assert f"{torch_module_path(spec.keras_layer)}.{leaves[spec.keras_attr]}" == spec.torch, spec
    assert keras_layer_name("layer1.0.downsample.0") == "layer1-0-downsample-0"
    for bad in ("a..b", "a-b.c", "a/b", ""):
        with pytest.raises(ArgumentError):
            keras_layer_name(bad)
