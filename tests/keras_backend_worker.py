"""Run by tests/test_keras_backends.py in a fresh process: zoo.keras on one Keras backend, without TensorFlow.

Usage: ``KERAS_BACKEND=jax python keras_backend_worker.py CASES.npz``. The
.npz holds, per model, the input, the reference output (computed by the
pytest process from the upstream graphs / NVIDIA's forward, never from
zoo.keras) and the converted weights' path. This process makes
``import tensorflow`` fail before anything is imported, builds the three
Keras models on the backend, loads the weights, compares each output with
its reference, checks that bad inputs raise zoo's errors, and prints one
line ``ok <backend>``; any failure exits non-zero with the reason.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys


class _BlockTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta-path finder that makes ``import tensorflow`` raise ImportError, as without the `tensorflow` extra.

    It answers with a spec of no origin whose loading fails, rather than
    raising from ``find_spec``: torch probes modules with
    ``importlib.util.find_spec`` and must see "nothing to import" there.
    """

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras"):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ImportError(f"blocked for this test: {spec.name}", name=spec.name)

    def exec_module(self, module):  # never reached: create_module raises
        raise ImportError(f"blocked for this test: {module.__name__}")


sys.meta_path.insert(0, _BlockTensorFlow())

import time  # noqa: E402

import numpy as np  # noqa: E402

_START = time.perf_counter()


def _log(what: str) -> None:
    """Progress on stderr, with seconds since start: the test prints it when the worker fails."""
    print(f"[{time.perf_counter() - _START:6.1f} s] {what}", file=sys.stderr, flush=True)

# Tolerances (the project's fp32 parity): logits max |diff| <= 1e-4, relative
# to the logits' scale beyond 10; flow max |diff| <= 1e-4 times the flow's scale.
LOGIT_TOL = 1e-4
FLOW_TOL = 1e-4


def _logits_close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()) / 10)
    diff = float(np.abs(ours - ref).max())
    assert diff <= LOGIT_TOL * scale, f"{what}: max |logit diff| {diff:.3g} > {LOGIT_TOL * scale:.3g}"
    assert (ours.argmax(1) == ref.argmax(1)).all(), f"{what}: top-1 differs"


def _flow_close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()))
    diff = float(np.abs(ours - ref).max())
    assert diff <= FLOW_TOL * scale, f"{what}: max |flow diff| {diff:.3g} px > {FLOW_TOL * scale:.3g}"


def _raises(error: type, call, match: str, what: str) -> None:
    try:
        call()
    except error as caught:
        assert match in str(caught), f"{what}: {type(caught).__name__} says {caught!s}, not {match!r}"
    except Exception as caught:  # a framework's own error: exactly what the checks must prevent
        raise AssertionError(f"{what}: expected {error.__name__}, got {type(caught).__name__}: {caught}") from None
    else:
        raise AssertionError(f"{what}: no error raised")


def main(cases_path: str) -> None:
    backend = os.environ["KERAS_BACKEND"]
    cases = dict(np.load(cases_path))

    import keras

    import zoo.keras
    from zoo.errors import InputShapeError, InputTypeError

    _log(f"imported zoo.keras on {keras.backend.backend()}")
    assert keras.backend.backend() == backend, f"Keras runs on {keras.backend.backend()}, not {backend}"
    builders = {"mobilenet_v1": zoo.keras.mobilenet_v1_tf_compat, "resnet50": zoo.keras.resnet50_tf_compat,
                "flownet2_sd": zoo.keras.flownet2_sd}
    if backend != "torch":  # the torch backend imports torch itself
        assert "torch" not in sys.modules, "import zoo.keras imported torch (only loading weights may)"

    nets = {}
    for model, build in builders.items():
        net = nets[model] = build(weights=str(cases[f"{model}_weights"]))
        _log(f"built {model} with weights")
        x = cases[f"{model}_input"]
        ours = keras.ops.convert_to_numpy(net(x, training=False))
        _log(f"ran {model}")
        if model == "flownet2_sd":
            _flow_close(ours, cases[f"{model}_reference"], f"{backend} {model}")
        else:
            _logits_close(ours, cases[f"{model}_reference"], f"{backend} {model}")

    _log("outputs match")
    # The input checks: zoo's errors, the same on every backend, before any layer runs.
    flownet, bare = nets["flownet2_sd"], nets["mobilenet_v1"]
    frames = np.zeros((1, 2, 64, 64, 3), np.float32)
    _raises(InputShapeError, lambda: flownet(np.zeros((1, 2, 100, 100, 3), np.float32)), "multiples of 64",
            "flownet 100x100")
    _raises(InputShapeError, lambda: flownet(frames.transpose(0, 4, 1, 2, 3)), "(B, 3, 2, H, W)", "flownet NCTHW")
    _raises(InputShapeError, lambda: flownet(frames[:, 0]), "expects input shaped", "flownet rank 4")
    _raises(InputTypeError, lambda: flownet(frames.astype(np.uint8)), "float32", "flownet uint8")
    image = np.zeros((1, 64, 64, 3), np.float32)
    _raises(InputShapeError, lambda: bare(image.transpose(0, 3, 1, 2)), "NCHW", "mobilenet NCHW")
    _raises(InputShapeError, lambda: bare(image[..., :1]), "expects input shaped", "mobilenet 1 channel")
    _raises(InputShapeError, lambda: bare(image[0]), "expects input shaped", "mobilenet rank 3")
    _raises(InputTypeError, lambda: bare(image.astype(np.float64)), "float32", "mobilenet float64")
    _raises(InputTypeError, lambda: bare(image.astype(np.uint8)), "preprocessed", "mobilenet uint8")

    _log("input checks raise zoo's errors")
    assert "tensorflow" not in sys.modules, "zoo.keras imported TensorFlow"
    print(f"ok {backend}")


if __name__ == "__main__":
    main(sys.argv[1])
