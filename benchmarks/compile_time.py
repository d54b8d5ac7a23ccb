"""Cold and warm compile time of ``zoo.fast_inference_model``, per model and input shape, each in a fresh process.

Cold: a new process with an empty ``TORCHINDUCTOR_CACHE_DIR`` (inductor has
nothing cached: dynamo traces, inductor lowers, the C++ compiler builds every
kernel). Warm: another new process with the same directory, as a second run of
a script on the same machine finds it (the FX graph and compiled kernels come
from the cache). Each shape gets its own fresh directory, so no cold figure
profits from an earlier shape. The figure is ``FastInferenceModel``'s own
``compile_seconds`` for the shape: the first call less nothing (Python start,
imports and weight loading are not counted). Goals: <= 30 s cold, <= 5 s warm.

    python benchmarks/compile_time.py --worker MODEL WEIGHTS BATCH HEIGHT WIDTH THREADS   # one compile, JSON out
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLD_GOAL_S = 30.0
WARM_GOAL_S = 5.0


def _worker(model: str, weights: str, batch: int, height: int, width: int, threads: int) -> dict:
    """Build ``model``'s fast form and call it once on a (batch, ..., height, width) input; its compile time."""
    import torch

    from zoo.fast import compiler_problem, fast_inference_model
    from zoo.registry import get_model_entry

    torch.set_num_threads(threads)
    entry = get_model_entry(model)
    net = entry.builder("torch")(weights=weights).eval()
    problem = compiler_problem()
    if problem is not None:
        return {"error": problem}
    fast = fast_inference_model(net, compile=True)
    x = torch.from_numpy(entry.input.example(batch, (height, width), seed=batch, framework="torch"))
    start = time.perf_counter()
    fast(x)
    first_call = time.perf_counter() - start
    return {"compile_s": max(fast.compile_seconds.values(), default=first_call), "first_call_s": first_call}


def _run_worker(args: list[str], cache: Path, timeout_s: float) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL="2")
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", *args], env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"no result in {timeout_s:g} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker exited {done.returncode}: {tail}"[:200]}
    return json.loads(lines[-1])


def measure(model: str, weights: str | Path, size: tuple[int, int], batches: tuple[int, ...], threads: int,
            timeout_s: float = 600.0) -> list[dict]:
    """One row per batch: cold and warm compile seconds of the fast form, each in a fresh process."""
    rows = []
    for batch in batches:
        row: dict = {"model": model, "batch": batch, "size": list(size)}
        with tempfile.TemporaryDirectory(prefix="zoo-inductor-cache-") as cache:
            for run in ("cold", "warm"):
                result = _run_worker([model, str(weights), str(batch), str(size[0]), str(size[1]), str(threads)],
                                     Path(cache), timeout_s)
                if "error" in result:
                    row["error"] = f"{run}: {result['error']}"
                    break
                row[f"{run}_s"] = result["compile_s"]
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> list[str]:
    """The compile-time table's lines (empty when not measured)."""
    if not rows:
        return []
    lines = ["### Compile time of zoo.fast_inference_model (fresh process each; cold: empty inductor cache, "
             "warm: the same cache again)", "",
             f"| model | batch | cold s (goal <= {COLD_GOAL_S:g}) | warm s (goal <= {WARM_GOAL_S:g}) |",
             "|---|---:|---:|---:|"]
    for row in rows:
        if "error" in row and "warm_s" not in row:
            cold = f"{row['cold_s']:.1f}" if "cold_s" in row else "-"
            lines.append(f"| {row['model']} | {row['batch']} | {cold} | error: {row['error'][:80]} |")
        else:
            lines.append(f"| {row['model']} | {row['batch']} | {row['cold_s']:.1f} | {row['warm_s']:.1f} |")
    lines.append("")
    return lines


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "--worker":
        model, weights, batch, height, width, threads = sys.argv[2:]
        print(json.dumps(_worker(model, weights, int(batch), int(height), int(width), int(threads))), flush=True)
    else:
        sys.exit(__doc__)
