"""Time and peak memory of one converter, measured in a fresh process.

    python benchmarks/conversion.py MODEL SOURCE OUT [CONVERTER]   # prints one JSON line

CONVERTER ("module:attribute") is the converter to run when MODEL is not
registered in the child (a model registered by the caller at run time).

The child imports the converter (and with it torch) first, so that import
cost and the interpreter's baseline are not counted; then it resets the
kernel's peak-RSS mark (Linux: ``echo 5 > /proc/self/clear_refs`` resets
VmHWM), runs ``convert(SOURCE, OUT)``, and reports the wall time, the peak
resident memory above the pre-conversion baseline, and tracemalloc's peak
(Python and numpy allocations; torch tensors are invisible to it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def measure_in_process(model: str, source: str, out: str, converter: str | None = None) -> dict:
    """Run ``model``'s converter (or ``converter``, a "module:attribute" path) on ``source`` here; wall time and
    peak memory above the baseline."""
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401  (the converters import torch lazily now; keep it out of the measurement)

    from zoo.registry import MODELS, get_model_entry, load_importable

    if converter and model not in MODELS:
        convert = load_importable(converter)
    else:
        convert = get_model_entry(model).load("converter")
    peak_reset = False
    try:
        Path("/proc/self/clear_refs").write_text("5")
        peak_reset = True
    except OSError:
        pass
    baseline_kib = _status_kib("VmRSS")
    tracemalloc.start()
    start = time.perf_counter()
    convert(source, out)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_kib = _status_kib("VmHWM")
    rss_peak = None
    if peak_reset and baseline_kib is not None and peak_kib is not None:
        rss_peak = (peak_kib - baseline_kib) * 1024
    return {
        "model": model,
        "source_bytes": os.path.getsize(source),
        "output_bytes": os.path.getsize(out),
        "seconds": seconds,
        "peak_rss_above_baseline_bytes": rss_peak,
        "tracemalloc_peak_bytes": traced_peak,
    }


def measure(model: str, source: str | os.PathLike, out: str | os.PathLike, timeout: float = 300,
            converter: str | None = None) -> dict:
    """Measure ``model``'s converter on ``source`` in a child process (a clean heap and peak mark).

    ``converter``: its "module:attribute" path, for a model the child's registry does not hold.
    """
    # The converter runs as a user runs it: glibc's default malloc thresholds, so that the
    # peak reflects what it allocates, not what the benchmark's tuning keeps around.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, __file__, model, str(source), str(out), *([converter] if converter else [])],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"model": model, "error": f"converter exited {result.returncode}: {tail[0][:200]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: python benchmarks/conversion.py MODEL SOURCE OUT [CONVERTER]")
    print(json.dumps(measure_in_process(*sys.argv[1:])))
