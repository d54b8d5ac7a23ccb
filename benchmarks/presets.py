"""What one benchmark run measures: the full and quick presets, and each model's batches and input size.

A preset holds no per-model data: a model's batch sizes and input size come
from its registry entry (``entry.benchmark``, ``entry.input.default_size``),
so a newly registered model is benchmarked with no edit here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from zoo.registry import BenchmarkSpec, ModelEntry

ALL_MODES = frozenset({"upstream", "torch-eager", "torch-channels_last", "torch-folded-cl", "torch-compiled",
                       "keras-call", "keras-function", "keras-folded-function", "keras-xla", "onnxruntime",
                       "naive-pad", "symmetric-pad"})
QUICK_MODES = frozenset({"upstream", "torch-eager", "torch-folded-cl", "torch-compiled", "keras-function",
                         "keras-folded-function", "keras-xla", "naive-pad", "symmetric-pad"})
# A model registered without a benchmark spec: batch 1 only, at its default size.
DEFAULT_BENCHMARK = BenchmarkSpec(batch_sizes=(1,), quick_batch_sizes=(1,))


@dataclass(frozen=True)
class Settings:
    """What one run measures: repeats, which modes, and whether each model runs its quick batches and size."""

    quick: bool
    warmup: int
    repeats: int
    repeats_large: int
    modes: frozenset[str]
    ceiling_size: int
    eval_images: int
    # --quick: the naive and symmetric padding rows only at the largest batch.
    padding_rows_largest_batch_only: bool = False
    # Sleep between modes so the previous runtime's spinning threads go idle (harness.time_interleaved).
    gap_s: float = 0.1

    def batches(self, entry: ModelEntry) -> tuple[int, ...]:
        """The batch sizes ``entry`` runs at in this preset."""
        spec = benchmark_spec(entry)
        return tuple(spec.quick_batch_sizes if self.quick else spec.batch_sizes)

    def size(self, entry: ModelEntry) -> tuple[int, int]:
        """The input (height, width) ``entry`` runs at in this preset."""
        spec = benchmark_spec(entry)
        return tuple((self.quick and spec.quick_size) or entry.input.default_size)

    def with_repeats(self, repeats: int) -> "Settings":
        """This preset with ``repeats`` timed runs at every batch."""
        return replace(self, repeats=repeats, repeats_large=repeats)


def benchmark_spec(entry: ModelEntry) -> BenchmarkSpec:
    """``entry``'s benchmark spec, or :data:`DEFAULT_BENCHMARK` for a model registered without one."""
    return entry.benchmark or DEFAULT_BENCHMARK


FULL = Settings(quick=False, warmup=2, repeats=5, repeats_large=5, modes=ALL_MODES, ceiling_size=2048,
                eval_images=256)
QUICK = Settings(quick=True, warmup=1, repeats=2, repeats_large=2, modes=QUICK_MODES, ceiling_size=1024,
                 eval_images=8, padding_rows_largest_batch_only=True, gap_s=0.05)
