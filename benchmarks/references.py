"""The upstream each model is timed and checked against, found through the registry.

The upstream release file is the model's stand-in (``entry.load("standin").write_upstream``)
unless a real file is given; zoo's converter turns it into the weights the ports load.
The upstream's forward is timed in one of two ways:

- a model with an upstream TensorFlow graph (``entry.upstream_graph``): one
  persistent ``tf.compat.v1.Session`` on the frozen graph, so that only
  ``session.run`` is timed, not the graph import;
- any other model: the stand-in's reference. A stand-in may offer
  ``reference_runner(upstream_file) -> run(batch)``, which reads the file once;
  otherwise ``reference_forward(upstream_file, batch)`` is timed as it is
  (reading the file included).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from zoo.eval.upstream_tf import upstream_runner as tf_upstream_runner
from zoo.registry import ModelEntry


# In the upstream row's description when its times include reading the upstream file.
READS_FILE_EACH_CALL = "reference_forward, reading the upstream file on every call"


def configure_tf(threads: int) -> Any:
    """TensorFlow with ``threads`` intra-op threads and one inter-op thread (set before first use)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        # One inter-op pool thread: CNN inference is a chain of ops, and a second pool
        # would oversubscribe the cores (Intel's TF CPU tuning guide: inter_op = sockets).
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process: the settings from the first call hold
    return tf


@dataclass
class Prepared:
    """A model's entry, its converted weights and the upstream file they came from."""

    entry: ModelEntry
    weights: Path
    source: Path

    @property
    def model(self) -> str:
        return self.entry.name


def prepare(entry: ModelEntry, workdir: Path, upstream_file: str | Path | None) -> Prepared:
    """Write the stand-in upstream (unless a real file is given) and convert it with the model's converter."""
    if upstream_file is not None:
        source = Path(upstream_file)
    else:
        source = Path(entry.load("standin").write_upstream(workdir / f"{entry.name}-upstream", seed=0))
    weights = entry.load("converter")(source, workdir / f"{entry.name}.safetensors")
    return Prepared(entry, Path(weights), source)


def _first_line(function: Callable) -> str:
    return (inspect.getdoc(function) or "").split("\n")[0].rstrip(".")


def upstream_runner(prep: Prepared, batch_keras: np.ndarray, threads: int) -> tuple[Callable[[], np.ndarray], str]:
    """``run()`` computing the upstream output on ``batch_keras`` (in PyTorch's layout), and its description."""
    entry = prep.entry
    to_torch = entry.output.to_torch_layout
    if entry.upstream_graph is not None:
        configure_tf(threads)
        run_session = tf_upstream_runner(entry.name, prep.source, threads)
        return (lambda: to_torch(run_session(batch_keras)),
                "TensorFlow session on the upstream frozen graph")
    standin = entry.load("standin")
    make_runner = getattr(standin, "reference_runner", None)
    if make_runner is not None:
        run_reference = make_runner(prep.source)
        return lambda: to_torch(run_reference(batch_keras)), _first_line(make_runner)
    return (lambda: to_torch(standin.reference_forward(prep.source, batch_keras)),
            f"{_first_line(standin.reference_forward)} ({READS_FILE_EACH_CALL})")
