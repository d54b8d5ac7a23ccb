"""benchmarks/run.py --quick runs and emits a well-formed table and JSON; zoo.fold keeps parity.

No timing is asserted: the numbers depend on the machine and its load. The
benchmark itself checks parity of every mode against the upstream on each
run; here only its report's shape and verdicts are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.fast import fast_inference_model
from zoo.fold import count_batch_norms, fold_batch_norms
from zoo.registry import get_model_entry, list_models

ROOT = Path(__file__).resolve().parents[1]


def _bench_module(name: str):
    """A module of benchmarks/, imported as benchmarks/run.py imports its siblings."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _randomize_batch_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) * 2 - 1)
            module.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.05)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name", [name for name in list_models() if get_model_entry(name).is_classifier])
def test_fold_batch_norms_keeps_parity_and_leaves_the_model_alone(name):
    entry = get_model_entry(name)
    torch.manual_seed(0)
    model = _randomize_batch_norms(entry.builder("torch")())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = fast_inference_model(model, compile=False)  # the eager folded form; compiling is tested in test_fast
    assert count_batch_norms(fast) == 0
    assert count_batch_norms(model) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the source model changed"
    # 96 is even, 97 odd: both of Conv2dSame's padding paths must survive the fold (where the model takes both).
    sizes = [size for size in (96, 97) if size % entry.input.size_multiple == 0 and size >= entry.input.min_size]
    assert sizes, f"{name} takes neither 96 nor 97"
    for size in sizes:
        shape = entry.input.shape("torch", 2, (size, size))
        x = torch.randn(shape, generator=torch.Generator().manual_seed(size))
        with torch.inference_mode():
            expected = model(x)
            got = fast(x.contiguous(memory_format=torch.channels_last))
            plain = fold_batch_norms(model)(x)
        # The model's parity bar (registry tolerance), relative to the output's scale as the entry says.
        bound = entry.tolerance.bound(expected.numpy())
        assert entry.tolerance.max_diff(got.numpy(), expected.numpy()) <= bound
        assert entry.tolerance.max_diff(plain.numpy(), expected.numpy()) <= bound


def test_quick_benchmark_writes_well_formed_table_and_json(tf, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--models", "mobilenet_v1",
         "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    markdown = (tmp_path / "latest.md").read_text()
    report = json.loads((tmp_path / "latest.json").read_text())
    assert markdown in result.stdout
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"

    # JSON: machine, ceiling, one model with two batches, every mode timed and parity-checked.
    assert report["format"] == "zoo-benchmark/1" and report["quick"] is True
    assert report["machine"]["threads"] >= 1 and report["machine"]["date"]
    assert report["ceiling"]["gflops"] > 0
    (model,) = report["models"]
    assert model["model"] == "mobilenet_v1"
    assert abs(model["gflop_per_sample"] - 1.14) < 0.02  # 0.57 GMAC
    assert [b["batch"] for b in model["batches"]] == [1, 4]
    for batch in model["batches"]:
        modes = {row["mode"]: row for row in batch["rows"]}
        exact_modes = {"torch-eager", "torch-folded-cl", "torch-compiled", "keras-function", "keras-folded-function",
                       "keras-xla"}
        if batch is model["batches"][-1]:  # --quick runs the padding rows at the largest batch only
            exact_modes.add("naive-pad")
            assert modes["symmetric-pad"]["exact"] is False  # the control computes another function
        assert exact_modes | {"upstream"} <= set(modes)
        for row in batch["rows"]:
            assert row["error"] is None, row
            assert row["throughput"] > 0 and len(row["times_s"]) >= 2
        for name in exact_modes:
            assert modes[name]["exact"] is True, modes[name]
        # The compiled form compiles on its first call per shape, outside the timed runs, in its own column.
        assert modes["torch-compiled"]["compile_s"] > 0 and "zoo.fast_inference_model" in modes["torch-compiled"]["description"]
        assert "torch-fused-cl" not in modes
        assert batch["fastest_torch"] in ("torch-eager", "torch-folded-cl", "torch-compiled")
    # The speed targets: the fastest exact PyTorch form against the upstream per batch, with margin.
    targets = {t["target"]: t for t in report["targets"]}
    speed_b1 = targets["mobilenet_v1 b1: fastest exact PyTorch / upstream (speed)"]
    assert speed_b1["goal"] == 1.5 and speed_b1["op"] == ">="
    assert speed_b1["margin"] == pytest.approx(speed_b1["value"] / 1.5 - 1)
    assert speed_b1["met"] == (speed_b1["value"] >= 1.5) and bool(speed_b1["why"]) == (not speed_b1["met"])
    assert targets["mobilenet_v1 b4: fastest exact PyTorch / upstream (speed)"]["goal"] == 1.1
    assert "mobilenet_v1: verify_accuracy / bare fast model throughput" in targets
    assert report["verify_accuracy"][0]["fast_check"]["max_diff"] <= 1e-4
    assert report["compile_time"] == []  # cold/warm compile processes: the default run only
    assert any("Keras JAX/torch-backend rows: not run" in note for note in model["notes"])
    # The summary and the targets come first.
    assert markdown.index("### Summary") < markdown.index("### Targets") < markdown.index("### mobilenet_v1 (")
    assert {t["target"].split(":")[0] for t in report["targets"]} >= {"mobilenet_v1 b4", "mobilenet_v1"}
    for target in report["targets"]:
        assert target["goal"] is None or (target["op"] in (">=", "<=") and isinstance(target["goal"], (int, float)))
    (conversion,) = report["conversion"]
    assert conversion["seconds"] > 0 and conversion["source_bytes"] > 0

    # LoadGen rows (--quick: tiny settings; structure only, no timing): both scenarios x every backend.
    (loadgen,) = report["loadgen"]
    assert loadgen["model"] == "mobilenet_v1"
    rows = {(r["scenario"], r["backend"]): r for r in loadgen["rows"]}
    assert set(rows) == {(s, b) for s in ("SingleStream", "Offline")
                         for b in ("tf-upstream", "torch", "keras", "onnxruntime")}
    for (scenario, backend), row in rows.items():
        assert row["error"] is None, row
        assert row["result"] in ("VALID", "INVALID") and row["value"] > 0 and row["samples"] > 0
        assert row["unit"] == ("ns" if scenario == "SingleStream" else "samples/s")
        assert row["vs_upstream"] > 0 and (backend != "tf-upstream" or row["vs_upstream"] == 1.0)
    assert rows[("Offline", "torch")]["samples"] == loadgen["settings"]["offline_samples"]
    assert "### MLPerf LoadGen" in markdown and "| mobilenet_v1 | Offline | onnxruntime | samples/s |" in markdown

    # Markdown: every table row has as many cells as its header.
    tables, current = [], None
    for line in markdown.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            current.append(line)
        else:
            current = None
    assert len(tables) >= 4
    for table in tables:
        width = table[0].count("|")
        assert set(table[1].replace("|", "").replace("-", "").replace(":", "")) <= {""}, table[1]
        assert all(row.count("|") == width for row in table), table
    assert "GFLOP/s" in markdown and "threads" in markdown and "Machine ceiling" in markdown


def test_benchmarks_doc_embeds_the_committed_benchmark_results():
    """docs/benchmarks.md's results block is benchmarks/results/latest.md (run.py --readme writes both)."""
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    latest = (ROOT / "benchmarks" / "results" / "latest.md").read_text()
    begin, end = "<!-- benchmark-results -->", "<!-- /benchmark-results -->"
    block = doc[doc.index(begin) + len(begin):doc.index(end)].strip()
    assert block == latest.strip(), "docs/benchmarks.md's results block is not benchmarks/results/latest.md"
    assert begin not in (ROOT / "README.md").read_text(), "the README links to the results; it does not embed them"


def test_run_readme_flag_writes_docs_benchmarks_md():
    run = _bench_module("run")
    assert run.RESULTS_DOC == ROOT / "docs" / "benchmarks.md"


def test_update_results_doc_replaces_only_the_marked_block(tmp_path):
    run = _bench_module("report")
    doc = tmp_path / "benchmarks.md"
    doc.write_text("intro\n<!-- benchmark-results -->\nold table\n<!-- /benchmark-results -->\noutro\n")
    report = "Measured today.\n\n### Targets\n\n| target | met |\n|---|---|\n| x | yes |\n"
    run.update_results_doc(doc, report)
    assert doc.read_text() == ("intro\n<!-- benchmark-results -->\nMeasured today.\n\n### Targets\n\n"
                               "| target | met |\n|---|---|\n| x | yes |\n<!-- /benchmark-results -->\noutro\n")
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match="benchmark-results"):
        run.update_results_doc(doc, report)
    assert doc.read_text() == "no markers\n"


def test_keras_backend_rows_are_parity_checked_and_a_failing_one_is_never_fastest(monkeypatch, tmp_path):
    """H2's keras_backends.measure rows join the table with the same parity check; errors become rows."""
    import types

    import numpy as np

    model_bench, rows_module, presets, report = (_bench_module(name) for name in ("model_bench", "rows", "presets",
                                                                                 "report"))
    from zoo.registry import get_model_entry

    entry = get_model_entry("mobilenet_v1")
    calls = []

    def measure(model, backend, weights, cases, warmup, repeats, timeout_s=900.0):
        calls.append((model, backend, Path(cases)))
        data = np.load(cases)
        assert set(data.files) == {"x_1", "ref_1"}
        if backend == "torch":
            return [{"mode": "keras-torch", "backend": "torch", "error": "keras torch backend unavailable"}]
        # Faster than everything, but off by 1: must be flagged, never the fastest.
        return [{"mode": "keras-jax-jit", "backend": "jax", "batch": 1, "seconds": 1e-4, "throughput": 1e4,
                 "compile_s": 2.0, "max_diff": 1.0, "description": "Keras 3 on JAX, jit"}]

    monkeypatch.setitem(sys.modules, "keras_backends", types.SimpleNamespace(measure=measure))
    make_row = rows_module.make_row
    batch_result = {"batch": 1, "rows": [
        make_row(1, 1.0, 100.0, 1e-4, "upstream", "reference", "", 0.02, 0.0),
        make_row(1, 1.0, 100.0, 1e-4, "keras-function", "keras", "", 0.03, 1e-6),
        make_row(1, 1.0, 100.0, 1e-4, "torch-compiled", "torch", "", 0.01, 1e-6, compile_s=3.0)]}
    rows_module.rank(batch_result)
    cases = {"x_1": np.zeros((1, 4, 4, 3), np.float32), "ref_1": np.ones((1, 1001), np.float32)}
    note = model_bench.keras_backend_rows(entry, tmp_path / "w.safetensors", cases, tmp_path, presets.QUICK,
                                          [batch_result], 1.0, 100.0, lambda message: None)
    assert note is None and [c[1] for c in calls] == ["jax", "torch"]
    rows = {r["mode"]: r for r in batch_result["rows"]}
    assert rows["keras-jax-jit"]["exact"] is False and rows["keras-jax-jit"]["compile_s"] == 2.0
    assert rows["keras-jax-jit"]["vs_upstream"] == pytest.approx(200.0)
    assert rows["keras-torch"]["error"] == "keras torch backend unavailable" and rows["keras-torch"]["exact"] is None
    assert batch_result["fastest_keras"] == "keras-function" and batch_result["fastest_torch"] == "torch-compiled"
    text = "\n".join(report.summary_markdown({"models": [{"model": "mobilenet_v1", "batches": [batch_result]}]}))
    assert "| mobilenet_v1 | 1 | 20.0 | - | torch-compiled | 10.0 | 2.00 | - | 3.0 | keras-function | 30.0 | 0.67 |" in text
    # Without H2's module the run goes on, with a note.
    monkeypatch.setitem(sys.modules, "keras_backends", None)
    assert "not available" in model_bench.keras_backend_rows(entry, tmp_path / "w", cases, tmp_path, presets.QUICK,
                                                             [batch_result], 1.0, 100.0, lambda message: None)


def test_compile_time_cold_then_warm_share_one_fresh_cache_per_shape(monkeypatch, tmp_path):
    compile_time = _bench_module("compile_time")
    seen = []

    def worker(args, cache, timeout_s):
        seen.append((args[2], cache))
        return {"compile_s": 20.0 if len([s for s in seen if s[1] == cache]) == 1 else 2.0}

    monkeypatch.setattr(compile_time, "_run_worker", worker)
    rows = compile_time.measure("mobilenet_v1", tmp_path / "w.safetensors", (224, 224), (1, 32), threads=2)
    assert [(r["batch"], r["cold_s"], r["warm_s"]) for r in rows] == [(1, 20.0, 2.0), (32, 20.0, 2.0)]
    assert seen[0][1] == seen[1][1] != seen[2][1] == seen[3][1]  # cold and warm: the same dir; each shape: a fresh one
    targets = _bench_module("targets").evaluate_targets([], [], [], [{**rows[0], "cold_s": 31.0}])
    assert [(t["target"], t["met"]) for t in targets] == [
        ("mobilenet_v1 b1: compile seconds, cold inductor cache", False),
        ("mobilenet_v1 b1: compile seconds, warm inductor cache", True)]
    assert targets[0]["margin"] == pytest.approx(-1 / 30) and targets[0]["why"]


@pytest.fixture
def registered_without_benchmark():
    """An in-tree model registered again under another name with every optional benchmark field left out."""
    import dataclasses

    from zoo.registry import get_model_entry, list_models, register_model, unregister_model

    source = get_model_entry(list_models()[0])
    entry = register_model(dataclasses.replace(source, name="bench_optional_fields", benchmark=None,
                                               upstream_graph=None, mlperf=None))
    try:
        yield entry
    finally:
        unregister_model(entry.name)


def test_presets_take_batches_and_sizes_from_the_registry(registered_without_benchmark):
    from zoo.registry import get_model_entry, list_models

    presets = _bench_module("presets")
    for name in list_models():
        entry = get_model_entry(name)
        spec = entry.benchmark
        if spec is None:
            assert presets.QUICK.batches(entry) == presets.FULL.batches(entry) == (1,)
            assert presets.QUICK.size(entry) == presets.FULL.size(entry) == tuple(entry.input.default_size)
            continue
        assert presets.FULL.batches(entry) == tuple(spec.batch_sizes)
        assert presets.QUICK.batches(entry) == tuple(spec.quick_batch_sizes)
        assert presets.FULL.size(entry) == tuple(entry.input.default_size)
        assert presets.QUICK.size(entry) == tuple(spec.quick_size or entry.input.default_size)
    assert presets.QUICK.with_repeats(7).repeats_large == 7


def _batch_result(batch: int, upstream_s: float, torch_s: float) -> dict:
    rows = _bench_module("rows")
    result = {"batch": batch, "rows": [
        rows.make_row(batch, 1.0, 100.0, 1e-4, "upstream", "reference", "", upstream_s, 0.0),
        rows.make_row(batch, 1.0, 100.0, 1e-4, "torch-compiled", "torch", "", torch_s, 1e-6)]}
    rows.rank(result)
    return result


def test_targets_take_goals_from_the_registry_and_explanations_from_the_table(registered_without_benchmark):
    from zoo.registry import get_model_entry, list_models

    targets = _bench_module("targets")
    with_goals = next(name for name in list_models()
                      if get_model_entry(name).benchmark and get_model_entry(name).benchmark.speedup_goals)
    small, large = get_model_entry(with_goals).benchmark.speedup_goals
    table = {"goals": targets.load_targets_table()["goals"], "explanations": [
        {"kind": "torch_vs_upstream", "model": with_goals, "batch": 1, "why": "measured why"},
        {"kind": "torch_vs_upstream", "model": None, "batch": None, "why": "any model"}]}
    models = [{"model": name, "batches": [_batch_result(1, 1.0, 2.0), _batch_result(8, 1.0, 2.0)]}
              for name in (with_goals, registered_without_benchmark.name)]
    found = {(t["model"], t["batch"]): t for t in targets.evaluate_targets(models, [], [], table=table)
             if t["kind"] == "torch_vs_upstream"}
    # Twice as slow as the upstream: 0.5x, a miss against the registry's goals, explained by the table.
    assert found[(with_goals, 1)]["goal"] == small and found[(with_goals, 1)]["met"] is False
    assert found[(with_goals, 1)]["why"] == "measured why; any model"
    assert found[(with_goals, 8)]["goal"] == large and found[(with_goals, 8)]["why"] == "any model"
    assert found[(with_goals, 1)]["margin"] == pytest.approx(0.5 / small - 1)
    # No benchmark spec, so no speed goal: the value is listed as information, neither met nor missed.
    info = found[(registered_without_benchmark.name, 1)]
    assert info["value"] == pytest.approx(0.5) and info["goal"] is None and info["met"] is None and info["why"] == ""
    # A miss the table does not explain says so.
    table["explanations"] = []
    missed = targets.evaluate_targets(models[:1], [], [], table=table)[0]
    assert missed["met"] is False and missed["why"] == targets.NOT_EXPLAINED


def test_targets_table_explains_known_kinds_only():
    from zoo.registry import list_models

    targets = _bench_module("targets")
    table = targets.load_targets_table()
    assert set(table["goals"]) <= set(targets.KINDS)
    for item in table["explanations"]:
        assert item["kind"] in targets.KINDS and item["why"], item
        assert item.get("model") is None or item["model"] in list_models(), item


def test_benchmarks_name_no_model():
    """benchmarks/ reads the registry: no string literal equal to a model's name (docstrings aside)."""
    import ast

    from zoo.registry import list_models

    names = set(list_models())
    found = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        found += [f"{path.name}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings]
    assert not found, found
