"""Timing, machine ceiling, FLOP counting and report writing for ``benchmarks/run.py``."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from zoo.fileio import atomic_write_bytes


@dataclass
class Mode:
    """One way of running a model: ``run()`` computes the batch and returns the output as numpy."""

    name: str
    description: str
    run: Callable[[], np.ndarray]
    # "reference" (the upstream), "torch", "keras", "onnxruntime", "baseline", "control".
    kind: str
    # A control (e.g. symmetric padding) computes a different function on purpose.
    exact_by_design: bool = True
    setup_s: float = 0.0
    # Seconds of the first call that compiled (torch.compile, XLA); None for a mode that does not compile.
    compile_s: float | None = None
    times: list[float] = field(default_factory=list)
    output: np.ndarray | None = None
    error: str | None = None


def time_interleaved(modes: list[Mode], warmup: int, repeats: int, gap_s: float = 0.1) -> None:
    """Warm each mode up, then time one call of each mode per round, ``repeats`` rounds.

    Interleaving spreads drift in the machine's speed over all modes alike, so
    the ratios between them hold up better than back-to-back blocks would. The
    runtimes' worker threads spin-wait for a while after a call (OpenMP in
    torch, Eigen in TF, ONNX Runtime's pool), stealing the cores from whatever
    runs next; ``gap_s`` of sleep between modes lets them go idle first. The
    first warm-up output is kept for the parity check. A mode that raises is
    recorded with its error and left out of later rounds.
    """
    for mode in modes:
        time.sleep(gap_s)
        try:
            for i in range(max(1, warmup)):
                out = mode.run()
                if i == 0:
                    mode.output = np.asarray(out)
        except Exception as error:  # noqa: BLE001 - reported in the table, the run goes on
            mode.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:200]
    for _ in range(repeats):
        for mode in modes:
            if mode.error is not None:
                continue
            time.sleep(gap_s)
            start = time.perf_counter()
            try:
                mode.run()
            except Exception as error:  # noqa: BLE001
                mode.error = f"{type(error).__name__}: {error}"[:200]
                continue
            mode.times.append(time.perf_counter() - start)


def median(times: list[float]) -> float | None:
    """Median of ``times``, or None when there are none."""
    return statistics.median(times) if times else None


def max_abs_diff(output: np.ndarray, reference: np.ndarray) -> float:
    """max |output - reference|, after checking that the shapes agree."""
    if output.shape != reference.shape:
        raise ValueError(f"output shape {output.shape} differs from the reference's {reference.shape}")
    return float(np.abs(output.astype(np.float64) - reference.astype(np.float64)).max())


def _best_gemm_seconds(gemm: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best, median) seconds of ``gemm`` over ``repeats`` runs after one warm-up."""
    gemm()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        gemm()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _gemm_libraries(size: int, threads: int) -> dict[str, Callable[[], object]]:
    """An fp32 ``size`` x ``size`` GEMM in each library this process has: torch, NumPy, TensorFlow."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    out = torch.empty(size, size)
    a_np, b_np = a.numpy(), b.numpy()
    out_np = np.empty_like(a_np)
    gemms: dict[str, Callable[[], object]] = {"torch.mm": lambda: torch.mm(a, b, out=out)}
    if threads == os.cpu_count():
        # NumPy's OpenBLAS fixes its thread count at import (all cores unless
        # OPENBLAS_NUM_THREADS says otherwise): comparable only when the run uses all cores.
        gemms["numpy.matmul"] = lambda: np.matmul(a_np, b_np, out=out_np)
    if "tensorflow" in sys.modules:  # only if the benchmark already loaded it (with its thread settings)
        tf = sys.modules["tensorflow"]
        a_tf, b_tf = tf.constant(a_np), tf.constant(b_np)
        gemms["tf.linalg.matmul"] = lambda: tf.linalg.matmul(a_tf, b_tf).numpy()
    return gemms


def matmul_ceiling(threads: int, size: int = 2048, repeats: int = 5) -> dict:
    """fp32 GEMM throughput of this machine with ``threads`` threads: the best of torch, NumPy and TensorFlow.

    The best sustained rate dense fp32 compute reaches here: a convolution
    lowered to GEMM cannot beat it. Each library is measured because each has
    its own GEMM (torch: MKL, NumPy: OpenBLAS, TensorFlow: oneDNN/Eigen) and one
    can fall well short of the hardware: MKL, for one, takes a slower code path
    on AMD CPUs. The ceiling is the fastest library's best run.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    per_library = {}
    try:
        for name, gemm in _gemm_libraries(size, threads).items():
            try:
                best, median = _best_gemm_seconds(gemm, repeats)
            except Exception as error:  # noqa: BLE001 - a library that fails is left out, named
                per_library[name] = {"error": f"{type(error).__name__}: {error}"[:200]}
                continue
            per_library[name] = {"best_s": best, "median_s": median, "gflops": 2 * size**3 / best / 1e9}
    finally:
        torch.set_num_threads(previous)
    # The best run, not the median: a ceiling is what the machine can reach; other
    # processes only ever slow a run down.
    measured = {k: v for k, v in per_library.items() if "gflops" in v}
    library = max(measured, key=lambda k: measured[k]["gflops"])
    return {"size": size, "threads": threads, "library": library, "best_s": measured[library]["best_s"],
            "median_s": measured[library]["median_s"], "gflops": measured[library]["gflops"],
            "per_library": per_library}


def count_gflop(model: torch.nn.Module, example: torch.Tensor) -> float:
    """GFLOP of one forward of ``model`` on ``example`` (convolutions and matmuls, 2 FLOP per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(example)
    return counter.get_total_flops() / 1e9


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD extensions that matter for fp32 conv speed, as /proc/cpuinfo lists them."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [flag for flag in wanted if flag in flags]


def machine_description(threads: int) -> dict:
    """What the numbers were measured on: CPU, cores, memory, thread count, library versions, date."""
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gib = None
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for module in ("tensorflow", "keras", "onnx", "onnxruntime"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "memory_gib": None if memory_gib is None else round(memory_gib, 1),
        "threads": threads,
        "os": f"{platform.system()} {platform.release()}",
        "load_average_1min_at_start": load,
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    return atomic_write_bytes(path, text.encode())


def write_json(path: Path, payload: dict) -> Path:
    """``payload`` as indented JSON, atomically."""
    return write_atomic(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")
