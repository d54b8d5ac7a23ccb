"""Every way the benchmark runs a model (its modes), built from the registry entry for one batch.

PyTorch: eager, channels_last, batch norm folded + channels_last, and the
compiled fast form (``zoo.fast_inference_model``); Keras: eager call,
``tf.function``, ``tf.function`` with batch norm folded, and the fast form
(``zoo.keras.fast``); the ONNX export in ONNX Runtime; and, for a model with
TF ``SAME`` layers, a naive per-call-padding baseline and a symmetric-padding
control. Each mode returns its output in PyTorch's layout, so all are compared
with the upstream alike.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import variants
from harness import Mode
from presets import Settings
from references import Prepared, configure_tf, upstream_runner
from zoo.fast import compiler_problem, fast_inference_model
from zoo.fold import count_batch_norms, fold_batch_norms, widen_same_kernels


def _torch_mode(name: str, description: str, net: torch.nn.Module, x: torch.Tensor, kind: str = "torch",
                exact: bool = True) -> Mode:
    def run() -> np.ndarray:
        with torch.inference_mode():
            return net(x).numpy()

    return Mode(name, description, run, kind, exact)


def _compiled_first_call(name: str, description: str, call: Callable[[], object], mode: Callable[[], Mode]) -> Mode:
    """``mode()`` after one call of ``call`` (which compiles for this input); the call's seconds become compile_s."""
    start = time.perf_counter()
    call()
    compile_s = time.perf_counter() - start
    built = mode()
    built.compile_s = compile_s
    return built


def torch_nets(prep: Prepared, settings: Settings) -> dict[str, object]:
    """The PyTorch forms of the model, built once and shared by all batches."""
    eager = prep.entry.builder("torch")(weights=str(prep.weights)).eval()
    nets: dict[str, object] = {"eager": eager, "has_batch_norms": count_batch_norms(eager) > 0,
                               "has_tf_same_layers": variants.has_tf_same_layers(eager)}
    if "torch-channels_last" in settings.modes:
        nets["channels_last"] = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    # The eager folded form (what zoo.fast_inference_model compiles), as a plain module.
    nets["folded_cl"] = widen_same_kernels(fold_batch_norms(eager)).to(memory_format=torch.channels_last)
    if "torch-compiled" in settings.modes:
        # One module for every batch: it compiles once per input shape.
        nets["compiled"] = fast_inference_model(eager)
    if nets["has_tf_same_layers"]:
        nets["naive"] = variants.naive_padding_model(nets["folded_cl"])
        nets["symmetric"] = variants.symmetric_padding_model(nets["folded_cl"])
    return nets


def example_batch(prep: Prepared, batch: int, size: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray]:
    """One random valid input (seeded by ``batch``): in PyTorch's layout, and the same values in Keras'."""
    x = prep.entry.input.example(batch, size, seed=batch, framework="torch")
    return torch.from_numpy(x), np.ascontiguousarray(prep.entry.input.convert_layout(x, "torch", "keras"))


def build_modes(prep: Prepared, batch: int, settings: Settings, threads: int, workdir: Path,
                nets: dict[str, object]) -> tuple[list[Mode], torch.Tensor, np.ndarray]:
    """Every mode of ``prep``'s model at ``batch``, each fed the same input in its own layout.

    Returns the modes and the input in PyTorch's and in Keras' layout.
    """
    entry = prep.entry
    x, keras_input = example_batch(prep, batch, settings.size(entry))
    keras_output = entry.output.to_torch_layout
    modes: list[Mode] = []
    wanted = settings.modes

    def add(name: str, make: Callable[[], Mode]) -> None:
        if name not in wanted:
            return
        start = time.perf_counter()
        try:
            mode = make()
        except Exception as error:  # noqa: BLE001 - a missing runtime is a row, not a crash
            mode = Mode(name, "", lambda: np.zeros(0), "error")
            mode.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:200]
        mode.setup_s = time.perf_counter() - start
        modes.append(mode)

    def upstream_mode() -> Mode:
        run, description = upstream_runner(prep, keras_input, threads)
        return Mode("upstream", description, run, "reference")

    add("upstream", upstream_mode)
    eager = nets["eager"]
    add("torch-eager", lambda: _torch_mode(
        "torch-eager", f"zoo PyTorch, eager, inference_mode, {entry.input.torch_layout}", eager, x))
    x_cl = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    add("torch-channels_last", lambda: _torch_mode(
        "torch-channels_last", "zoo PyTorch, channels_last", nets["channels_last"], x_cl))
    add("torch-folded-cl", lambda: _torch_mode(
        "torch-folded-cl", "zoo PyTorch, BN folded into convs (zoo.fold) + channels_last", nets["folded_cl"], x_cl))

    def compiled() -> Mode:
        net = nets["compiled"]
        how = ("torch.compile, inductor, freezing" if getattr(net, "compiled", False)
               else f"NOT compiled: {compiler_problem() or 'compile off'}")
        description = f"zoo.fast_inference_model: BN folded + channels_last + {how}"

        def first_call() -> None:
            with torch.inference_mode():
                net(x)

        # The first call per shape compiles: done here, timed as compile_s, never in the throughput.
        mode = _compiled_first_call("torch-compiled", description, first_call,
                                    lambda: _torch_mode("torch-compiled", description, net, x))
        # FastInferenceModel's own figure for this shape where it has one (the first call less the layout copy).
        mode.compile_s = getattr(net, "compile_seconds", {}).get((tuple(x.shape),), mode.compile_s)
        return mode

    add("torch-compiled", compiled)

    def keras_modes(name: str) -> Mode:
        tf = configure_tf(threads)
        if "keras" not in nets:
            nets["keras"] = entry.builder("keras")(weights=str(prep.weights))
        net = nets["keras"]
        tensor = tf.constant(keras_input)
        if name == "keras-call":
            return Mode(name, "zoo Keras, model(x, training=False)", lambda: keras_output(net(tensor, training=False)),
                        "keras")
        if name == "keras-xla":
            from zoo.keras.fast import fast_inference_function

            function = nets.setdefault("keras_fast", fast_inference_function(net))
            description = "zoo.keras.fast.fast_inference_function: BN folded + tf.function (XLA where exact and faster)"
            return _compiled_first_call(name, description, lambda: function(tensor), lambda: Mode(
                name, description, lambda: keras_output(function(tensor)), "keras"))
        if name == "keras-folded-function":
            from zoo.keras.fold import fold_batch_norms as keras_fold_batch_norms

            folded = nets.setdefault("keras_folded", keras_fold_batch_norms(net))
            function = tf.function(folded, jit_compile=False)
            return Mode(name, "zoo Keras, BN folded into convs (zoo.keras.fold) + tf.function",
                        lambda: keras_output(function(tensor, training=False)), "keras")
        function = tf.function(net, jit_compile=False)
        return Mode(name, "zoo Keras, tf.function-compiled call",
                    lambda: keras_output(function(tensor, training=False)), "keras")

    add("keras-call", lambda: keras_modes("keras-call"))
    add("keras-function", lambda: keras_modes("keras-function"))
    if nets["has_batch_norms"]:  # with nothing to fold it would repeat keras-function
        add("keras-folded-function", lambda: keras_modes("keras-folded-function"))
    add("keras-xla", lambda: keras_modes("keras-xla"))

    def onnx_mode() -> Mode:
        import onnxruntime as ort

        from zoo.export import export_onnx

        path = export_onnx(eager, x, workdir / f"{entry.name}-b{batch}.onnx", input_name=entry.onnx.input,
                           output_name=entry.onnx.output)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}
        return Mode("onnxruntime", f"zoo.export ONNX (opset 18) in ONNX Runtime {ort.__version__}",
                    lambda: session.run(None, feed)[0], "onnxruntime")

    padding_rows = not settings.padding_rows_largest_batch_only or batch == max(settings.batches(entry))
    if nets["has_tf_same_layers"] and padding_rows:
        # Both on the torch-folded-cl form, so that only the padding differs from that row.
        add("naive-pad", lambda: _torch_mode(
            "naive-pad", "baseline: torch-folded-cl with F.pad computed in Python before every conv",
            nets["naive"], x_cl, "baseline"))
        add("symmetric-pad", lambda: _torch_mode(
            "symmetric-pad", "control: torch-folded-cl with symmetric padding, same FLOPs (another function)",
            nets["symmetric"], x_cl, "control", exact=False))
    add("onnxruntime", onnx_mode)  # last: its thread pool spins longest after a call
    return modes, x, keras_input


def profile_compiled(prep: Prepared, net: torch.nn.Module, size: tuple[int, int], calls: int = 5,
                     row_limit: int = 15) -> dict:
    """torch.profiler's per-op table of the compiled form at batch 1 (printed to stderr) and its top ops."""
    from torch.profiler import ProfilerActivity, profile

    x, _ = example_batch(prep, 1, size)
    with torch.inference_mode():
        net(x)  # compiled already for batch 1 in the timed run; a no-op otherwise
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                net(x)
    averages = prof.key_averages()
    print(f"--- torch.profiler: {prep.model} compiled form, batch 1, {calls} calls ---", file=sys.stderr)
    print(averages.table(sort_by="self_cpu_time_total", row_limit=row_limit), file=sys.stderr)
    total = sum(e.self_cpu_time_total for e in averages) or 1.0
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:row_limit]
    return {"calls": calls, "ops": [{"op": e.key, "count": e.count,
                                     "self_cpu_ms_per_call": e.self_cpu_time_total / 1e3 / calls,
                                     "share": e.self_cpu_time_total / total} for e in top]}
