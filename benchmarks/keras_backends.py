"""Benchmark rows for the Keras ports on Keras 3's JAX and PyTorch backends (and TensorFlow's).

Keras fixes its backend when it is first imported (``KERAS_BACKEND``), so each
backend is measured in a subprocess: :func:`measure` runs this file with
``--worker`` under ``KERAS_BACKEND=<backend>``, passing the caller's environment
(thread settings such as ``OMP_NUM_THREADS`` or ``XLA_FLAGS``) through. The
worker builds ``zoo.keras.<builder>(weights=...)``, times each of the
backend's standard inference forms on every batch of the cases file, compares
the output with the reference there, and writes its rows as JSON to a file
named on its command line (stdout may carry backend chatter).

The forms, each timed host NumPy in, host NumPy out:

- jax ``jit``: ``jax.jit`` over ``model.stateless_call`` with the variables
  passed as arguments (XLA compiles once per input shape);
- jax ``predict_on_batch``: Keras' own jitted predict step;
- torch ``no_grad``: the model called under ``torch.no_grad()``;
- torch ``compile`` (opt-in, ``--forms no_grad compile``; minutes to build):
  ``torch.compile`` of that call; its max_diff says whether it stays exact,
  and its description gives its max |difference| from the eager call;
- tensorflow ``predict_on_batch``: Keras' ``tf.function`` predict step.

Standalone: ``python benchmarks/keras_backends.py --model MODEL --backend jax
--weights W --batches 1 4`` times random valid input of a registered model (no
reference, so no ``max_diff``) and prints the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Forms each backend runs by default, fastest-known first; "compile" is opt-in (slow to build).
FORMS: dict[str, tuple[str, ...]] = {
    "jax": ("jit", "predict_on_batch"),
    "torch": ("no_grad",),
    "tensorflow": ("predict_on_batch",),
}
OPTIONAL_FORMS: dict[str, tuple[str, ...]] = {"torch": ("compile",)}
# Environment variables that set thread counts, named in the rows' descriptions.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS", "TF_NUM_INTRAOP_THREADS")


def mode_name(backend: str, form: str | None = None) -> str:
    """The row's ``mode``: ``keras-jax-jit``, ``keras-jax-predict_on_batch``, ``keras-torch``, ...

    The torch backend's plain ``no_grad`` call is just ``keras-torch``; a
    whole-backend failure is reported under ``keras-<backend>``.
    """
    if form is None or (backend, form) == ("torch", "no_grad"):
        return f"keras-{backend}"
    return f"keras-{backend}-{form}"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _error_rows(backend: str, forms: Sequence[str] | None, reason: str) -> list[dict]:
    names = [mode_name(backend)] if not forms else [mode_name(backend, form) for form in forms]
    return [{"mode": name, "backend": backend, "error": _one_line(reason)} for name in names]


def measure(model: str, backend: str, weights: Path, cases: Path, warmup: int, repeats: int,
            timeout_s: float = 900.0, *, forms: Sequence[str] | None = None) -> list[dict]:
    """Time the Keras port of ``model`` on Keras' ``backend`` in a subprocess; one row per (form, batch).

    Args:
        model: a registered model's name (:func:`zoo.list_models`).
        backend: "jax" or "torch" (or "tensorflow").
        weights: a converted ``.safetensors`` file.
        cases: an ``.npz`` holding, per batch size b, ``x_{b}`` (the Keras
            model's input, float32 in its Keras layout, e.g. NHWC for an image
            model) and optionally ``ref_{b}`` (the upstream output in the
            Keras layout); without ``ref_{b}`` the rows omit max_diff.
        warmup: calls before timing; the first call (at least one is made) is
            timed on its own as ``compile_s`` (tracing and compilation).
        repeats: timed calls per form and batch; ``seconds`` is their median.
        timeout_s: the worker is killed after this long (an error row).
        forms: the backend's forms to run (default :data:`FORMS`).

    Returns rows ``{"mode", "backend", "batch", "seconds", "throughput",
    "compile_s", "max_diff", "description"}``. A backend that cannot be
    imported, an unknown backend name, a worker that fails or times out, or a
    form that fails gives ``{"mode", "backend", "error"}`` rows instead: this
    never raises for those. It raises ValueError / FileNotFoundError for the
    caller's own mistakes (unknown model, missing files, counts < 0).
    """
    from zoo.registry import list_models

    if model not in list_models():
        raise ValueError(f"unknown model {model!r}; known: {', '.join(list_models())}")
    for label, path in (("weights", weights), ("cases", cases)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{label} file not found: {path}")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    if backend not in FORMS:
        return _error_rows(str(backend), forms, f"unknown Keras backend {backend!r}; known: {', '.join(FORMS)}")
    forms = tuple(forms) if forms else FORMS[backend]
    known = FORMS[backend] + OPTIONAL_FORMS.get(backend, ())
    unknown = [form for form in forms if form not in known]
    if unknown:
        raise ValueError(f"unknown form(s) {unknown} for backend {backend!r}; known: {', '.join(known)}")

    with tempfile.TemporaryDirectory(prefix="zoo_keras_bench_") as folder:
        out = Path(folder) / "rows.json"
        # Absolute paths: the worker runs in the checkout, not in the caller's folder.
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--out", str(out),
                   "--model", model, "--backend", backend, "--weights", str(Path(weights).resolve()),
                   "--cases", str(Path(cases).resolve()), "--warmup", str(warmup), "--repeats", str(repeats),
                   "--forms", *forms]
        env = dict(os.environ, KERAS_BACKEND=backend)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # A session of its own, so that a timeout also ends the compile workers torch.compile spawns.
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended just now
                pass
            process.communicate()
            return _error_rows(backend, forms, f"the {backend} worker ran past {timeout_s:g} s and was killed")
        if out.is_file():
            payload = json.loads(out.read_text())
            if "rows" in payload:
                return payload["rows"]
            return _error_rows(backend, forms, payload.get("error", "the worker wrote no rows"))
        lines = [line for line in (stderr or stdout or "").splitlines() if line.strip()]
        reason = lines[-1] if lines else "no output"
        return _error_rows(backend, forms, f"the {backend} worker exited with status {process.returncode}: {reason}")


# --- the worker (runs under KERAS_BACKEND=<backend>) -------------------------------------------------


def _threads_note() -> str:
    settings = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if name in os.environ]
    return "threads: " + (", ".join(settings) if settings else "the backend's defaults")


def _jax_forms(model: Any) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]]:
    import jax
    import jax.numpy as jnp

    # Copies: Keras' predict_on_batch donates the variables' buffers to its jitted
    # step, which would delete arrays this form still holds.
    trainable = [jnp.array(v.value, copy=True) for v in model.trainable_variables]
    non_trainable = [jnp.array(v.value, copy=True) for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, x):
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return outputs

    def jit(x: np.ndarray) -> np.ndarray:
        # np.asarray waits for the result (it blocks until the computation is done).
        return np.asarray(forward(trainable, non_trainable, jnp.asarray(x)))

    return {
        "jit": (jit, f"jax {jax.__version__}: jax.jit over model.stateless_call, variables as arguments"),
        "predict_on_batch": (model.predict_on_batch, f"jax {jax.__version__}: model.predict_on_batch "
                                                     "(Keras' jitted predict step)"),
    }


def _torch_forms(model: Any, forms: Sequence[str]) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]]:
    import torch

    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    def call(function: Callable) -> Callable[[np.ndarray], np.ndarray]:
        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return function(torch.from_numpy(x)).detach().cpu().numpy()

        return run

    built = {"no_grad": (call(model), f"torch {torch.__version__}: model(x) under torch.no_grad()")}
    if "compile" in forms:
        built["compile"] = (call(torch.compile(model)),
                            f"torch {torch.__version__}: torch.compile(model)(x) under torch.no_grad()")
    return built


def _tensorflow_forms(model: Any) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]]:
    import tensorflow as tf

    return {"predict_on_batch": (model.predict_on_batch,
                                 f"tensorflow {tf.__version__}: model.predict_on_batch (Keras' tf.function)")}


def _batches(cases: np.lib.npyio.NpzFile) -> list[int]:
    batches = sorted(int(key[2:]) for key in cases.files if key.startswith("x_"))
    if not batches:
        raise ValueError(f"the cases file holds no x_<batch> arrays (found: {', '.join(cases.files)})")
    return batches


def run_worker(model_name: str, backend: str, weights: Path, cases_path: Path, warmup: int, repeats: int,
               forms: Sequence[str]) -> list[dict]:
    """Build the Keras model on the current backend and time ``forms`` on each batch (the worker's body)."""
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}, not {backend!r}: set KERAS_BACKEND "
                           f"before Keras is first imported")
    from zoo.registry import get_model_entry

    builder = get_model_entry(model_name).load("keras_builder")
    model = builder(weights=weights)
    if backend == "jax":
        built = _jax_forms(model)
    elif backend == "torch":
        built = _torch_forms(model, forms)
    else:
        built = _tensorflow_forms(model)
    prefix = f"zoo.keras {model_name} on Keras {keras.__version__}, backend "

    rows = []
    with np.load(cases_path) as cases:
        for batch in _batches(cases):
            x = np.ascontiguousarray(cases[f"x_{batch}"])
            if x.dtype != np.float32:
                # Casting here would hide a caller's un-preprocessed (uint8) or float64 input.
                raise ValueError(f"x_{batch} is {x.dtype}; the Keras models take float32")
            if x.shape[0] != batch:
                raise ValueError(f"x_{batch} has batch size {x.shape[0]}, not {batch}")
            ref = cases[f"ref_{batch}"] if f"ref_{batch}" in cases.files else None
            rows.extend(_time_forms(backend, {f: built[f] for f in forms}, x, ref, warmup, repeats, prefix))
    return rows


def _time_forms(backend: str, forms: dict[str, tuple[Callable, str]], x: np.ndarray, ref: np.ndarray | None,
                warmup: int, repeats: int, prefix: str) -> list[dict]:
    """First call (compile_s), warm-up, then ``repeats`` rounds timing one call of each form in turn.

    Interleaving the forms spreads drift in the machine's speed over all of
    them alike (as benchmarks/harness.py does for the in-process rows).
    """
    batch = x.shape[0]
    state: dict[str, dict] = {}
    rows: dict[str, dict] = {}
    first: dict[str, np.ndarray] = {}
    for form, (run, description) in forms.items():
        row = {"mode": mode_name(backend, form), "backend": backend, "batch": batch}
        try:
            start = time.perf_counter()
            out = np.asarray(run(x))
            row["compile_s"] = time.perf_counter() - start
            for _ in range(warmup - 1):
                run(x)
        except Exception as error:  # a form that fails is an error row; the other forms still run
            row["error"] = _one_line(f"{type(error).__name__}: {error}")
            rows[form] = row
            continue
        if ref is not None:
            if out.shape != ref.shape:
                row["error"] = f"output shape {out.shape} differs from the reference's {ref.shape}"
                rows[form] = row
                continue
            row["max_diff"] = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64))))
        first[form] = out
        if form == "compile" and "no_grad" in first:
            # Inductor may fuse and reorder float operations: say how far that moved the output.
            description += f"; max |compiled - eager| = {float(np.max(np.abs(out - first['no_grad']))):.3g}"
        row["description"] = prefix + description + "; " + _threads_note()
        rows[form] = row
        state[form] = {"run": run, "times": []}
    for _ in range(repeats):
        for form, entry in list(state.items()):
            try:
                start = time.perf_counter()
                entry["run"](x)
                entry["times"].append(time.perf_counter() - start)
            except Exception as error:
                rows[form] = {key: rows[form][key] for key in ("mode", "backend", "batch")}
                rows[form]["error"] = _one_line(f"{type(error).__name__} while timing: {error}")
                del state[form]
    for form, entry in state.items():
        seconds = statistics.median(entry["times"])
        rows[form].update(seconds=seconds, throughput=batch / seconds)
    # Keys in the documented order, whatever was filled in first.
    order = ("mode", "backend", "batch", "seconds", "throughput", "compile_s", "max_diff", "description", "error")
    return [{key: row[key] for key in order if key in row} for row in rows.values()]


def _worker_main(args: argparse.Namespace) -> int:
    from zoo.fileio import atomic_write_bytes

    try:
        payload: dict = {"rows": run_worker(args.model, args.backend, Path(args.weights), Path(args.cases),
                                            args.warmup, args.repeats, args.forms)}
        status = 0
    except Exception as error:  # reported to the parent as one line; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        payload = {"error": _one_line(f"{type(error).__name__}: {error}")}
        status = 1
    # Atomically: the parent never reads a half-written file.
    atomic_write_bytes(args.out, json.dumps(payload).encode())
    return status


# --- standalone ---------------------------------------------------------------------------------------


def random_input(model: str, batch: int, size: tuple[int, int] | None = None, seed: int = 0) -> np.ndarray:
    """Random valid input of ``model``'s Keras layout and value range (no reference); size: its default."""
    from zoo.registry import get_model_entry

    return get_model_entry(model).input.example(batch, size, seed=seed, framework="keras")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: standalone rows on random input, or (``--worker``) the subprocess :func:`measure` runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a registered model (zoo.list_models())")
    parser.add_argument("--backend", required=True, help="jax, torch or tensorflow")
    parser.add_argument("--weights", required=True, help="a converted .safetensors file")
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="input size (default: the model's default input size)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--forms", nargs="+", help="forms to run (default: the backend's standard forms)")
    parser.add_argument("--timeout", type=float, default=900.0)
    # The subprocess side of measure().
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cases", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker_main(args)
    from zoo.registry import list_models

    if args.model not in list_models():
        parser.error(f"unknown model {args.model!r}; known: {', '.join(list_models())}")

    size = tuple(args.size) if args.size else None
    with tempfile.TemporaryDirectory(prefix="zoo_keras_cases_") as folder:
        cases = Path(folder) / "cases.npz"
        np.savez(cases, **{f"x_{b}": random_input(args.model, b, size) for b in args.batches})
        rows = measure(args.model, args.backend, Path(args.weights), cases, args.warmup, args.repeats,
                       args.timeout, forms=args.forms)
    for row in rows:
        print(json.dumps(row))
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        # Run as a script (the worker too), this file's folder is sys.path[0], not the checkout.
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
