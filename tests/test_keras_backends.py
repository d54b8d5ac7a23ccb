"""zoo.keras on the JAX and torch backends, without TensorFlow, against the upstream references.

Keras fixes its backend when first imported, so each backend runs in its own
process (tests/keras_backend_worker.py) with ``import tensorflow`` made to
fail. The references are computed here, independently of zoo.keras, by each
model's stand-in (``reference_forward``: TF running the upstream frozen graph,
or NVIDIA's forward restated) on the stand-in upstream file. The bar (in the
worker) is each registry entry's tolerance, with the same top-1 for a classifier.
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
    """The model names and, per model, a random valid input, the upstream reference on it and the weights' path."""
    from zoo.registry import get_model_entry, list_models

    out = {"models": np.array(list_models())}
    for model in list_models():
        entry = get_model_entry(model)
        x = entry.input.example(2, seed=7, framework="keras")
        ref = entry.load("standin").reference_forward(standins.source(model), x)
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
