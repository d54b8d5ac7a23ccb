"""One table row per (mode, batch): time, throughput, GFLOP/s, parity; and the ranking of a batch's rows."""

from __future__ import annotations


def make_row(batch: int, gflop: float, ceiling_gflops: float, tolerance: float | None, mode: str, kind: str,
             description: str, seconds: float | None, max_diff: float | None, error: str | None = None,
             times: list[float] | None = None, setup_s: float | None = None,
             compile_s: float | None = None) -> dict:
    """One table row: time, throughput, GFLOP/s, fraction of the ceiling, and parity against the upstream."""
    row = {"mode": mode, "kind": kind, "description": description, "error": error,
           "setup_s": None if setup_s is None else round(setup_s, 2),
           "compile_s": None if compile_s is None else round(compile_s, 2), "times_s": times or [],
           "median_s": seconds, "throughput": None if not seconds else batch / seconds,
           "gflops": None if not seconds else gflop * batch / seconds, "max_abs_diff": max_diff,
           "tolerance": tolerance, "exact": None}
    row["ceiling_fraction"] = None if row["gflops"] is None else row["gflops"] / ceiling_gflops
    if max_diff is not None and tolerance is not None:
        row["exact"] = bool(max_diff <= tolerance)
    return row


def rank(batch_result: dict) -> None:
    """Each row's speed ratio to the upstream and to ONNX Runtime; the fastest exact PyTorch and Keras rows.

    Only exact rows count: a row that breaks parity, errs or was not checked is never the fastest.
    """
    rows = batch_result["rows"]
    upstream = next((r for r in rows if r["kind"] == "reference" and r["throughput"]), None)
    onnx = next((r for r in rows if r["mode"] == "onnxruntime" and r["exact"] and r["throughput"]), None)
    for row in rows:
        row["vs_upstream"] = row["throughput"] / upstream["throughput"] if upstream and row["throughput"] else None
        row["vs_onnxruntime"] = row["throughput"] / onnx["throughput"] if onnx and row["throughput"] else None
    for kind in ("torch", "keras"):
        fastest = max((r for r in rows if r["kind"] == kind and r["exact"] and r["throughput"]),
                      key=lambda r: r["throughput"], default=None)
        batch_result[f"fastest_{kind}"] = fastest and fastest["mode"]


def find_row(batch_result: dict, mode: str | None) -> dict | None:
    """The row of ``mode`` in ``batch_result`` (None when absent or ``mode`` is None)."""
    return next((r for r in batch_result["rows"] if r["mode"] == mode), None) if mode else None
