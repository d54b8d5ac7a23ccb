"""Top-1/top-5 of a classifier on preprocessed ImageNet arrays, in one process or across ranks, and its report.

Labels are ``argmax + entry.label_offset`` (MLPerf's post-processing). Under
``torchrun`` rank r takes images r, r + N, r + 2N, ... of the val_map; the
correct counts are all-reduced and the per-image predictions gathered on rank
0, so the report equals a single-process run's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..fileio import atomic_write_bytes
from ..progress import Progress
from ..registry import get_model_entry
from .datasets import ArrayDataset
from .distributed import DistContext, all_reduce_counts, gather_to_main, shard_indices
from .fast_check import FastCheck
from .predictors import Predictor
from .prefetch import PrefetchLoader
from .scoring import TOP_K, metric, score, top_k_labels

__all__ = ["REPORT_FORMAT", "evaluate_arrays", "format_summary", "write_report"]

REPORT_FORMAT = "zoo-accuracy-report/1"


def evaluate_arrays(
    model: str,
    dataset: ArrayDataset,
    predictors: Sequence[Predictor],
    batch_size: int = 32,
    ctx: DistContext | None = None,
    progress: bool = True,
    info: dict | None = None,
) -> dict | None:
    """Evaluate ``predictors`` (the first is the main one, a second is compared) on ``dataset``.

    Returns the report (see :func:`format_summary`) on rank 0, None on other
    ranks. ``info`` is copied into the report (weights, val_map, upstream file, ...).
    """
    ctx = ctx or DistContext()
    entry = get_model_entry(model)
    indices = shard_indices(len(dataset), ctx.rank, ctx.world_size)
    loader = PrefetchLoader(dataset, indices, batch_size)
    bar = Progress(len(indices), f"{model} {'+'.join(p.framework for p in predictors)}",
                   enabled=progress and ctx.is_main)
    # Per framework: top-5 labels per dataset index.
    local: list[dict[int, list[int]]] = [{} for _ in predictors]
    try:
        for batch_indices, batch in loader:
            for store, predictor in zip(local, predictors):
                top5 = top_k_labels(predictor(batch, dataset.layout), entry.label_offset)
                store.update(zip(batch_indices, top5.tolist()))
            bar.update(len(batch_indices))
    finally:
        bar.close()
    results = local
    if ctx.world_size > 1:
        counts = np.stack([score(np.array([s[i] for i in sorted(s)], dtype=np.int64).reshape(-1, TOP_K),
                                 dataset.labels[sorted(s)]) for s in local])
        counts = all_reduce_counts(counts, ctx)
        gathered = gather_to_main(local, ctx)
        if gathered is None:
            return None
        results = [{} for _ in predictors]
        for part in gathered:
            for store, piece in zip(results, part):
                store.update(piece)
        if any(len(s) != len(dataset) for s in results) or int(counts[0, 2]) != len(dataset):
            raise RuntimeError(f"the ranks evaluated {int(counts[0, 2])} of {len(dataset)} images")
    return _report(model, dataset, predictors, results, ctx, info or {}, batch_size)


def _report(model: str, dataset: ArrayDataset, predictors: Sequence[Predictor],
            results: list[dict[int, list[int]]], ctx: DistContext, info: dict, batch_size: int) -> dict:
    entry = get_model_entry(model)
    labels = dataset.labels
    names = [e.image for e in dataset.entries]
    sections = []
    for predictor, store in zip(predictors, results):
        top5 = np.array([store[i] for i in range(len(dataset))], dtype=np.int64).reshape(-1, TOP_K)
        top1_correct, top5_correct, count = score(top5, labels)
        sections.append({
            "framework": predictor.framework,
            "fast_check": None if predictor.fast_check is None else predictor.fast_check.as_dict(),
            "count": int(count),
            "top1": metric(top1_correct, count),
            "top5": metric(top5_correct, count),
            "predictions": {name: {"label": int(label), "top5": row}
                            for name, label, row in zip(names, labels.tolist(), top5.tolist())},
        })
    main = sections[0]
    reference = entry.reference_metric.get("top1")
    report = {
        "format": REPORT_FORMAT,
        "model": model,
        **{k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in info.items()},
        "arrays": str(dataset.directory),
        "layout": dataset.layout,
        "label_offset": entry.label_offset,
        "batch_size": batch_size,
        "world_size": ctx.world_size,
        "missing": dataset.missing,
        "reference": {"top1": reference, "dataset": entry.reference_metric.get("dataset"),
                      "source": entry.reference_metric.get("source")},
        "top1_difference": None if reference is None else main["top1"]["percent"] - reference,
        **main,
    }
    if len(sections) > 1:
        other = sections[1]
        disagreements = [
            {"image": name, "label": main["predictions"][name]["label"],
             main["framework"]: main["predictions"][name]["top5"][0],
             other["framework"]: other["predictions"][name]["top5"][0]}
            for name in names
            if main["predictions"][name]["top5"][0] != other["predictions"][name]["top5"][0]
        ]
        report["compare"] = {**other, "top1_disagreements": disagreements}
    return report


def format_summary(report: dict) -> str:
    """The lines the CLI prints: top-1 and top-5 with the count, the MLPerf reference and the difference."""

    def line(section: dict) -> str:
        count = section["count"]
        return (f"{report['model']} ({section['framework']}) on {count} images: "
                f"top-1 {section['top1']['percent']:.3f}% ({section['top1']['correct']}/{count}), "
                f"top-5 {section['top5']['percent']:.3f}% ({section['top5']['correct']}/{count})")

    def check_line(section: dict) -> str | None:
        check = section.get("fast_check")
        if not check or check.get("max_diff") is None:
            return None
        return FastCheck(**check).line()

    lines = [line(report)]
    lines += [text for text in (check_line(report), check_line(report.get("compare", {}))) if text]
    if report["missing"]:
        lines.append(f"left out: {len(report['missing'])} images of the val_map with no array (--skip-missing)")
    reference = report["reference"]["top1"]
    if reference is not None:
        lines.append(f"MLPerf reference top-1 {reference:.3f}% ({report['reference']['dataset']}); "
                     f"difference {report['top1_difference']:+.3f} points")
    if "compare" in report:
        cmp = report["compare"]
        lines.append(line(cmp))
        bad = cmp["top1_disagreements"]
        lines.append(f"top-1 disagreements {report['framework']} vs {cmp['framework']}: {len(bad)}"
                     + (" (expected: none)" if bad else ""))
        for item in bad[:20]:
            lines.append(f"  {item['image']}: label {item['label']}, {report['framework']} "
                         f"{item[report['framework']]}, {cmp['framework']} {item[cmp['framework']]}")
        if len(bad) > 20:
            lines.append(f"  ... and {len(bad) - 20} more (all in the report)")
    return "\n".join(lines)


def write_report(path: str | os.PathLike, report: dict) -> Path:
    """Write ``report`` as JSON (to a temporary name, then renamed). Returns the path."""
    return atomic_write_bytes(path, (json.dumps(report, indent=1) + "\n").encode())
