"""Run by tests/test_keras_backends.py in a fresh process: zoo.keras on one Keras backend, without TensorFlow.

Usage: ``KERAS_BACKEND=jax python keras_backend_worker.py CASES.npz``. The
.npz holds the model names and, per model, the input, the reference output
(computed by the pytest process from the upstream references, never from
zoo.keras) and the converted weights' path. This process makes
``import tensorflow`` fail before anything is imported, builds each model's
Keras port on the backend (its registry entry's builder), loads the weights,
compares each output with its reference within the entry's tolerance,
checks that bad inputs raise zoo's errors, and prints one line
``ok <backend>``; any failure exits non-zero with the reason.
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


def _matches(entry, ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    """The registry entry's parity bar; a classifier also keeps every top-1."""
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    bound, diff = entry.tolerance.bound(ref), entry.tolerance.max_diff(ours, ref)
    assert diff <= bound, f"{what}: max |diff| {diff:.3g} > {bound:.3g} (bar: {entry.tolerance.describe()})"
    if entry.is_classifier:
        assert (ours.argmax(1) == ref.argmax(1)).all(), f"{what}: top-1 differs"


def _raises(error: type, call, match: str, what: str) -> None:
    try:
        call()
    except error as caught:
        assert match in str(caught), f"{what}: {type(caught).__name__} says {caught!s}, not {match!r}"
    except Exception as caught:  # a framework's own error: exactly what the checks must prevent
        raise AssertionError(f"{what}: expected {error.__name__}, got {type(caught).__name__}: {caught}") from None
    else:
        raise AssertionError(f"{what}: no error raised")


def _check_inputs(entry, net, errors, what: str) -> None:
    """Bad inputs raise zoo's errors, the same on every backend, before any layer runs."""
    InputShapeError, InputTypeError = errors
    spec = entry.input
    side = max(spec.min_size, spec.size_multiple)
    x = spec.example(1, (side, side), framework="keras")
    _raises(InputShapeError, lambda: net(spec.convert_layout(x, "keras", "torch")), "is it", f"{what} PyTorch layout")
    _raises(InputShapeError, lambda: net(x[0]), "expects input shaped", f"{what} no batch axis")
    _raises(InputShapeError, lambda: net(x[..., :1]), "expects input shaped", f"{what} 1 channel")
    _raises(InputTypeError, lambda: net(x.astype(np.float64)), "float32", f"{what} float64")
    _raises(InputTypeError, lambda: net(x.astype(np.uint8)), "preprocessed", f"{what} uint8")
    if spec.size_multiple > 1:
        odd = np.zeros(spec.shape("keras", 1, (side + spec.size_multiple // 2,) * 2), np.float32)
        _raises(InputShapeError, lambda: net(odd), f"multiples of {spec.size_multiple}", f"{what} odd size")


def main(cases_path: str) -> None:
    backend = os.environ["KERAS_BACKEND"]
    cases = dict(np.load(cases_path))

    import keras

    import zoo.keras  # noqa: F401  (importing it must import neither TensorFlow nor, off the torch backend, torch)
    from zoo.errors import InputShapeError, InputTypeError
    from zoo.registry import get_model_entry

    _log(f"imported zoo.keras on {keras.backend.backend()}")
    assert keras.backend.backend() == backend, f"Keras runs on {keras.backend.backend()}, not {backend}"
    if backend != "torch":  # the torch backend imports torch itself
        assert "torch" not in sys.modules, "import zoo.keras imported torch (only loading weights may)"

    for model in (str(name) for name in cases["models"]):
        entry = get_model_entry(model)
        net = entry.builder("keras")(weights=str(cases[f"{model}_weights"]))
        _log(f"built {model} with weights")
        ours = keras.ops.convert_to_numpy(net(cases[f"{model}_input"], training=False))
        _log(f"ran {model}")
        _matches(entry, ours, cases[f"{model}_reference"], f"{backend} {model}")
        _check_inputs(entry, net, (InputShapeError, InputTypeError), f"{backend} {model}")
        ref = cases[f"{model}_reference"]
        _log(f"{model}: max |diff| {entry.tolerance.max_diff(ours, ref):.3g} within {entry.tolerance.bound(ref):.3g}, "
             "input checks raise zoo's errors")

    assert "tensorflow" not in sys.modules, "zoo.keras imported TensorFlow"
    print(f"ok {backend}")


if __name__ == "__main__":
    main(sys.argv[1])
