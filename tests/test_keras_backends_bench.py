"""benchmarks/keras_backends.py: Keras-on-JAX rows, checked against TensorFlow running the upstream graph.

The reference is independent of zoo's ports: TensorFlow executing the
MobileNet-v1 stand-in release's frozen graph (as tests/test_mobilenet_v1.py).
One worker run serves the tests below: batch 1 carries the true reference,
batch 2 a deliberately wrong one (reference + 1), so the check is seen to fail.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from parity import ROOT, require_module
from zoo.registry import get_model_entry

require_module("jax")

ROW_KEYS = {"mode", "backend", "batch", "seconds", "throughput", "compile_s", "max_diff", "description"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("keras_backends", ROOT / "benchmarks" / "keras_backends.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def jax_run(tf, bench, standins, tmp_path_factory):
    from zoo.standins import mobilenet_v1

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(standins.frozen_graph("mobilenet_v1").read_bytes())
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    ref = mobilenet_v1.run_graph(graph_def, x)
    cases = tmp_path_factory.mktemp("keras_bench") / "cases.npz"
    x2 = np.concatenate([x, x])
    np.savez(cases, x_1=x, ref_1=ref, x_2=x2, ref_2=np.concatenate([ref, ref]) + 1)
    rows = bench.measure("mobilenet_v1", "jax", standins.converted("mobilenet_v1"), cases, warmup=1, repeats=2)
    return rows, ref


def test_jax_rows_match_upstream_graph(jax_run):
    rows, ref = jax_run
    assert not [row for row in rows if "error" in row], rows
    assert {(row["mode"], row["batch"]) for row in rows} == {
        (mode, batch) for mode in ("keras-jax-jit", "keras-jax-predict_on_batch") for batch in (1, 2)}
    # fp32 parity with the upstream graph: the model's registry tolerance.
    tolerance = get_model_entry("mobilenet_v1").tolerance.bound(ref)
    for row in rows:
        assert set(row) == ROW_KEYS and row["backend"] == "jax"
        assert row["seconds"] > 0 and row["compile_s"] > 0
        assert row["throughput"] == pytest.approx(row["batch"] / row["seconds"])
        assert "jax" in row["description"]
        if row["batch"] == 1:
            assert row["max_diff"] <= tolerance, row


def test_wrong_reference_is_caught(jax_run):
    rows, _ = jax_run
    # ref_2 is the true reference + 1: every form must report a difference of about 1.
    for row in (row for row in rows if row["batch"] == 2):
        assert row["max_diff"] == pytest.approx(1.0, abs=1e-3), row


def test_unknown_backend_is_an_error_row(bench, tmp_path):
    weights, cases = tmp_path / "w.safetensors", tmp_path / "cases.npz"
    weights.write_bytes(b"unused")
    np.savez(cases, x_1=np.zeros((1, 32, 32, 3), np.float32))
    rows = bench.measure("mobilenet_v1", "mxnet", weights, cases, warmup=0, repeats=1)
    assert rows == [{"mode": "keras-mxnet", "backend": "mxnet", "error": rows[0]["error"]}]
    assert "mxnet" in rows[0]["error"] and "jax" in rows[0]["error"]


def test_caller_mistakes_raise(bench, tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        bench.measure("vgg16", "jax", tmp_path / "w", tmp_path / "c", warmup=0, repeats=1)
    with pytest.raises(FileNotFoundError, match="weights"):
        bench.measure("resnet50", "jax", tmp_path / "missing.safetensors", tmp_path / "c", warmup=0, repeats=1)
