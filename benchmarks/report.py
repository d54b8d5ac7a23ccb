"""The benchmark report as Markdown (``latest.md``, the block in docs/benchmarks.md), and the doc's update."""

from __future__ import annotations

from pathlib import Path

import compile_time
import harness
import loadgen
from rows import find_row
from zoo.errors import UnknownModelError
from zoo.registry import get_model_entry

# `--readme` writes the report into this page, between these markers (the README links to it).
RESULTS_DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
RESULTS_MARKERS = ("<!-- benchmark-results -->", "<!-- /benchmark-results -->")


def _fmt(value: float | None, spec: str, empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def _sample(result: dict) -> str:
    """What one sample of the model is ("image", "pair"): from the report, else from the registry."""
    if result.get("sample"):
        return result["sample"]
    try:
        benchmark = get_model_entry(result["model"]).benchmark
    except UnknownModelError:
        benchmark = None
    return benchmark.sample if benchmark else "sample"


def markdown(report: dict) -> str:
    """The report as the Markdown that docs/benchmarks.md embeds."""
    m = report["machine"]
    ceiling = report["ceiling"]
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['logical_cores']} logical cores, {m['memory_gib']} GiB, "
        f"{', '.join(m['cpu_flags']) or 'no AVX2'}), {m['threads']} threads, "
        f"torch {m['versions']['torch']}, TensorFlow {m['versions']['tensorflow']}, "
        f"ONNX Runtime {m['versions']['onnxruntime'] or 'not installed'}; "
        f"{'--quick' if report['quick'] else 'full run'}, medians of {report['repeats']} timed runs after warm-up, "
        f"modes interleaved. Load average at start: {_fmt(m['load_average_1min_at_start'], '.2f')}. "
        f"glibc malloc: {'thresholds raised (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_)' if any(report['malloc_tuning'].values()) else 'defaults'}.",
        "",
        f"Machine ceiling: fp32 matmul {ceiling['size']}x{ceiling['size']}, the fastest of "
        + ", ".join(f"{name} {v['gflops']:.1f}" if "gflops" in v else f"{name} (error)"
                    for name, v in ceiling.get("per_library", {}).items())
        + f" GFLOP/s: **{ceiling['gflops']:.1f} GFLOP/s** ({ceiling.get('library', 'torch.mm')}) "
        f"with {ceiling['threads']} threads.",
        "",
    ]
    lines += summary_markdown(report) + targets_markdown(report["targets"])
    for result in report["models"]:
        published = (f" (published {result['published_gflop_per_sample']:g})"
                     if result.get("published_gflop_per_sample") else "")
        lines += [
            f"### {result['model']} ({result['size'][0]}x{result['size'][1]}, "
            f"{result['gflop_per_sample']:.2f} GFLOP per {_sample(result)}{published}, "
            f"upstream: {result['upstream_file']})",
            "",
            f"| batch | mode | ms / batch | {result['unit']} | GFLOP/s | of ceiling | x upstream | x ORT | compile s "
            "| max abs diff | parity |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for batch_result in result["batches"]:
            fastest = {batch_result.get("fastest_torch"), batch_result.get("fastest_keras")} - {None}
            for row in batch_result["rows"]:
                if row["error"] and row["throughput"] is None:
                    parity = f"error: {row['error'][:80]}"
                elif row["kind"] == "reference":
                    parity = "reference"
                elif row["kind"] == "control":
                    parity = "control (not exact by design)"
                elif row["exact"] is None:
                    parity = "unchecked, not counted"
                else:
                    parity = "exact" if row["exact"] else "**PARITY FAIL, not counted**"
                name = row["mode"] + (" **(fastest)**" if row["mode"] in fastest else "")
                lines.append(
                    f"| {batch_result['batch']} | {name} | {_fmt(row['median_s'] and row['median_s'] * 1e3, '.1f')} | "
                    f"{_fmt(row['throughput'], '.1f')} | {_fmt(row['gflops'], '.1f')} | "
                    f"{_fmt(row['ceiling_fraction'] and 100 * row['ceiling_fraction'], '.0f')}{'%' if row['ceiling_fraction'] else ''} | "
                    f"{_fmt(row['vs_upstream'], '.2f')} | {_fmt(row.get('vs_onnxruntime'), '.2f')} | "
                    f"{_fmt(row.get('compile_s'), '.1f')} | {_fmt(row['max_abs_diff'], '.1e')} | {parity} |"
                )
        lines.append("")
        lines += [f"Note: {note}" for note in result.get("notes", [])] + ([""] if result.get("notes") else [])
        if result.get("profile"):
            lines += [f"torch.profiler, {result['model']} compiled form at batch 1 (self CPU per call, "
                      f"top {len(result['profile']['ops'])} ops):", "", "| op | calls | ms / call | share |",
                      "|---|---:|---:|---:|"]
            calls = result["profile"]["calls"]
            lines += [f"| {o['op'].replace('|', '/')} | {o['count'] // calls} | {o['self_cpu_ms_per_call']:.2f} | {100 * o['share']:.0f}% |"
                      for o in result["profile"]["ops"]]
            lines.append("")
    if report["conversion"]:
        lines += ["### Conversion (stand-in upstream files, fresh process each)", "",
                  "| model | source MB | seconds | peak RSS above baseline MB | x source | tracemalloc peak MB |",
                  "|---|---:|---:|---:|---:|---:|"]
        for item in report["conversion"]:
            if "error" in item:
                lines.append(f"| {item['model']} | - | - | - | - | error: {item['error']} |")
                continue
            peak = item["peak_rss_above_baseline_bytes"]
            lines.append(
                f"| {item['model']} | {item['source_bytes'] / 1e6:.1f} | {item['seconds']:.2f} | "
                f"{_fmt(peak and peak / 1e6, '.1f')} | {_fmt(peak and peak / item['source_bytes'], '.2f')} | "
                f"{item['tracemalloc_peak_bytes'] / 1e6:.1f} |")
        lines.append("")
    if report["verify_accuracy"]:
        lines += ["### verify_accuracy.py (evaluate_arrays with prefetch) vs the bare model, both in the script's "
                  "default (fast) form", "",
                  "| model | images | batch | bare img/s | verify_accuracy img/s | ratio |", "|---|---:|---:|---:|---:|---:|"]
        for item in report["verify_accuracy"]:
            if "error" in item:
                lines.append(f"| {item['model']} | - | - | - | - | {item['error']} |")
            else:
                lines.append(f"| {item['model']} | {item['images']} | {item['batch_size']} | "
                             f"{item['bare_images_per_s']:.1f} | {item['verify_accuracy_images_per_s']:.1f} | "
                             f"{item['ratio']:.3f} |")
        lines.append("")
    lines += compile_time.markdown(report.get("compile_time", []))
    lines += loadgen.markdown(report.get("loadgen", []))
    return "\n".join(lines)


def summary_markdown(report: dict) -> list[str]:
    """The table the reader sees first: per model and batch, time per batch and the ratios that the targets judge."""
    lines = ["### Summary: time per batch (ms) and speed ratios (> 1: faster)", "",
             "| model | batch | upstream | ONNX Runtime | fastest exact PyTorch | ms | x upstream | x ORT | compile s "
             "| fastest exact Keras | ms | x upstream |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|"]
    for result in report["models"]:
        for batch_result in result["batches"]:
            upstream = next((r for r in batch_result["rows"] if r["kind"] == "reference"), None)
            onnx = find_row(batch_result, "onnxruntime")
            torch_row = find_row(batch_result, batch_result["fastest_torch"])
            keras_row = find_row(batch_result, batch_result.get("fastest_keras"))

            def ms(row: dict | None) -> str:
                return _fmt(row and row["median_s"] and row["median_s"] * 1e3, ".1f")

            lines.append(
                f"| {result['model']} | {batch_result['batch']} | {ms(upstream)} | {ms(onnx)} | "
                f"{torch_row['mode'] if torch_row else 'none exact'} | {ms(torch_row)} | "
                f"{_fmt(torch_row and torch_row['vs_upstream'], '.2f')} | "
                f"{_fmt(torch_row and torch_row.get('vs_onnxruntime'), '.2f')} | "
                f"{_fmt(torch_row and torch_row.get('compile_s'), '.1f')} | "
                f"{keras_row['mode'] if keras_row else 'none exact'} | {ms(keras_row)} | "
                f"{_fmt(keras_row and keras_row['vs_upstream'], '.2f')} |")
    lines += ["", "Upstream: each model's upstream reference, as its own table's upstream row describes it. "
              "compile s: the first call of the compiled form at that shape, in this process (not in the times).", ""]
    return lines


def targets_markdown(targets: list[dict]) -> list[str]:
    """The Targets table: measured, goal, met, margin (+: to spare, -: missed by), note and why a miss happened."""
    lines = ["### Targets", "", "| target | measured | goal | met | margin | note | why missed |",
             "|---|---:|---:|---|---:|---|---|"]
    for t in targets:
        met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
        goal = "-" if t["goal"] is None else f"{t['op']} {t['goal']:g}"
        margin = "-" if t.get("margin") is None else f"{100 * t['margin']:+.0f}%"
        lines.append(f"| {t['target']} | {_fmt(t['value'], '.3g')} | {goal} | {met} | {margin} | {t['note']} | "
                     f"{t.get('why', '')} |")
    lines.append("")
    return lines


def update_results_doc(doc: Path, report_markdown: str) -> None:
    """Replace what lies between ``doc``'s benchmark markers with the report, as it is."""
    text = doc.read_text()
    begin, end = text.find(RESULTS_MARKERS[0]), text.find(RESULTS_MARKERS[1])
    if begin < 0 or end < begin:
        raise SystemExit(f"{doc} has no {RESULTS_MARKERS[0]} ... {RESULTS_MARKERS[1]} block")
    harness.write_atomic(doc, f"{text[:begin]}{RESULTS_MARKERS[0]}\n{report_markdown.strip()}\n{text[end:]}")

