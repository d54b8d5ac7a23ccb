"""The targets a benchmark run is judged against: measured value, goal, met or missed, by how much, and why.

Each target has a kind (e.g. ``torch_vs_upstream``), a model and, where it
applies, a batch. The goals that hold for every model and the explanations of
missed targets are data in ``targets.json`` beside this file; a model's own
goals (speed over its upstream, share of the matmul ceiling) come from its
registry entry's :class:`~zoo.registry.BenchmarkSpec`.
"""

from __future__ import annotations

import json
from pathlib import Path

import compile_time
from rows import find_row
from zoo.errors import UnknownModelError
from zoo.registry import BenchmarkSpec, get_model_entry

TARGETS_FILE = Path(__file__).resolve().parent / "targets.json"
# Every kind of target evaluate_targets lists (targets.json's explanations name one of these).
KINDS = ("torch_vs_upstream", "torch_time_vs_onnxruntime", "keras_vs_upstream", "ceiling_fraction",
         "same_padding_cost", "naive_padding_saving", "verify_accuracy_ratio", "compile_cold_s", "compile_warm_s",
         "conversion_seconds", "conversion_memory_ratio")
NOT_EXPLAINED = "not yet explained"


def load_targets_table(path: Path = TARGETS_FILE) -> dict:
    """``targets.json``: ``goals`` (kind -> goal) and ``explanations`` (kind, model, batch, why)."""
    return json.loads(Path(path).read_text())


def explanation(table: dict, kind: str, model: str, batch: int | None) -> str:
    """Why a target of ``kind`` for ``model`` at ``batch`` was missed, from the table ('' when not explained)."""
    return "; ".join(
        item["why"] for item in table.get("explanations", [])
        if item["kind"] == kind and item.get("model") in (None, model) and item.get("batch") in (None, batch))


def _benchmark_spec(model: str) -> BenchmarkSpec | None:
    """The model's benchmark spec; None for a model no longer registered (a stored report's)."""
    try:
        return get_model_entry(model).benchmark
    except UnknownModelError:
        return None


def _profile_note(result: dict) -> str:
    """The compiled form's three costliest ops at batch 1 (from --profile), for a missed speed target's why."""
    ops = (result.get("profile") or {}).get("ops", [])[:3]
    return "; ".join(f"{o['op'].replace('|', '/')} {100 * o['share']:.0f}%" for o in ops)


def evaluate_targets(models: list[dict], conversions: list[dict], evaluation: list[dict],
                     compiles: list[dict] | None = None, table: dict | None = None) -> list[dict]:
    """The targets: measured value, goal, met or missed, by how much (margin) and why (when missed).

    ``table`` defaults to ``targets.json``. A target whose goal is None (the
    model's registry entry sets none) is listed as information, neither met nor missed.
    """
    table = load_targets_table() if table is None else table
    goals = table["goals"]
    targets = []

    def add(kind: str, model: str, batch: int | None, name: str, value: float | None, goal: float | None,
            higher_is_better: bool, note: str = "", why: str = "") -> None:
        met = None if value is None or goal is None else (value >= goal if higher_is_better else value <= goal)
        # margin > 0: met with that much to spare; < 0: missed by that much (a fraction of the goal).
        margin = (None if met is None
                  else ((value - goal) if higher_is_better else (goal - value)) / goal)
        reason = "; ".join(part for part in (explanation(table, kind, model, batch), why) if part) or NOT_EXPLAINED
        targets.append({"target": name, "kind": kind, "model": model, "batch": batch, "value": value, "goal": goal,
                        "op": "" if goal is None else (">=" if higher_is_better else "<="),
                        "met": met, "margin": margin, "note": note, "why": reason if met is False else ""})

    for result in models:
        model = result["model"]
        spec = _benchmark_spec(model)
        speedup_goals = spec.speedup_goals if spec else None
        profile = _profile_note(result)
        why_speed = f"profile, compiled b1: {profile}" if profile else ""
        for index, batch_result in enumerate(result["batches"]):
            batch = batch_result["batch"]
            fastest = find_row(batch_result, batch_result["fastest_torch"])
            if batch == 1 or index == len(result["batches"]) - 1:
                goal = None if speedup_goals is None else speedup_goals[0 if batch == 1 else 1]
                add("torch_vs_upstream", model, batch, f"{model} b{batch}: fastest exact PyTorch / upstream (speed)",
                    fastest and fastest["vs_upstream"], goal, True,
                    fastest["mode"] if fastest else "no exact PyTorch mode", why_speed)
            if batch == 1:
                onnx = find_row(batch_result, "onnxruntime")
                ratio = (fastest["median_s"] / onnx["median_s"]
                         if fastest and onnx and onnx["exact"] and onnx["median_s"] else None)
                add("torch_time_vs_onnxruntime", model, batch,
                    f"{model} b1: fastest exact PyTorch time / ONNX Runtime time", ratio,
                    goals["torch_time_vs_onnxruntime"], False,
                    "no exact ONNX Runtime row (not in --quick)" if not (onnx and onnx["exact"])
                    else fastest["mode"] if fastest else "no exact PyTorch mode", why_speed)
        if not result["batches"]:
            continue
        largest = result["batches"][-1]
        batch = largest["batch"]
        fastest = find_row(largest, largest["fastest_torch"])
        keras = [r for r in largest["rows"] if r["kind"] == "keras" and r["exact"] and r["vs_upstream"]]
        best_keras = max(keras, key=lambda r: r["vs_upstream"], default=None)
        add("keras_vs_upstream", model, batch, f"{model} b{batch}: zoo Keras / upstream",
            best_keras and best_keras["vs_upstream"], goals["keras_vs_upstream"], True,
            best_keras["mode"] if best_keras else "no exact Keras mode")
        if spec and spec.ceiling_fraction_goal is not None and fastest:
            add("ceiling_fraction", model, batch, f"{model} b{batch}: fastest exact mode / matmul ceiling",
                fastest["ceiling_fraction"], spec.ceiling_fraction_goal, True, fastest["mode"])
        same, symmetric = find_row(largest, "torch-folded-cl"), find_row(largest, "symmetric-pad")
        if same and symmetric and same["median_s"] and symmetric["median_s"]:
            add("same_padding_cost", model, batch, f"{model} b{batch}: TF-SAME time / symmetric padding",
                same["median_s"] / symmetric["median_s"], goals["same_padding_cost"], False,
                "torch-folded-cl vs its symmetric-padding twin, same FLOPs")
        naive = find_row(largest, "naive-pad")
        if same and naive and same["median_s"] and naive["median_s"]:
            add("naive_padding_saving", model, batch,
                f"{model} b{batch}: naive per-call padding time / zoo static padding",
                naive["median_s"] / same["median_s"], None, False, "what static padding saves (information, no goal)")
    for item in evaluation:
        add("verify_accuracy_ratio", item["model"], None,
            f"{item['model']}: verify_accuracy / bare fast model throughput", item.get("ratio"),
            goals["verify_accuracy_ratio"], True,
            item.get("error", f"{item.get('images')} images, batch {item.get('batch_size')}, {item.get('form', '')}"))
    compile_goals = {"cold": compile_time.COLD_GOAL_S, "warm": compile_time.WARM_GOAL_S}
    for item in compiles or []:
        for run in ("cold", "warm"):
            add(f"compile_{run}_s", item["model"], item["batch"],
                f"{item['model']} b{item['batch']}: compile seconds, {run} inductor cache", item.get(f"{run}_s"),
                compile_goals[run], False, item.get("error", "fresh process"))
    for item in conversions:
        add("conversion_seconds", item["model"], None, f"{item['model']}: conversion seconds", item.get("seconds"),
            goals["conversion_seconds"], False, item.get("error", ""))
        peak = item.get("peak_rss_above_baseline_bytes")
        ratio = None if peak is None or not item.get("source_bytes") else peak / item["source_bytes"]
        add("conversion_memory_ratio", item["model"], None, f"{item['model']}: conversion peak memory / source size",
            ratio, goals["conversion_memory_ratio"], False,
            item.get("error", "peak RSS above the pre-conversion baseline"))
    return targets
