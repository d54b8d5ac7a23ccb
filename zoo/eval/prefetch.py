"""Batches of a data set read ahead by background threads, so a model does not wait on I/O."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator, Protocol, Sequence

import numpy as np

from ..errors import ArgumentError

__all__ = ["PrefetchLoader"]


class BatchSource(Protocol):
    """What :class:`PrefetchLoader` reads: ``batch(indices)`` stacks those samples."""

    def batch(self, indices: Sequence[int]) -> np.ndarray: ...


class PrefetchLoader:
    """Batches of a data set (e.g. an :class:`~zoo.eval.datasets.ArrayDataset`), read ahead by threads.

    Iterating yields ``(indices, batch)`` in order; up to ``prefetch`` batches
    are read while the caller computes, so the model does not wait on I/O
    (``np.load`` and the copy release the GIL). An error reading a batch is
    raised where that batch is consumed.
    """

    def __init__(self, dataset: BatchSource, indices: Sequence[int], batch_size: int,
                 prefetch: int = 4, threads: int = 2) -> None:
        if batch_size < 1:
            raise ArgumentError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batches = [list(indices[i:i + batch_size]) for i in range(0, len(indices), batch_size)]
        self.prefetch = max(1, prefetch)
        self.threads = max(1, threads)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[list[int], np.ndarray]]:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="zoo-prefetch") as pool:
            pending: deque[tuple[list[int], Future]] = deque()
            upcoming = iter(self.batches)
            try:
                for batch in upcoming:
                    pending.append((batch, pool.submit(self.dataset.batch, batch)))
                    if len(pending) >= self.prefetch:
                        break
                while pending:
                    batch, future = pending.popleft()
                    nxt = next(upcoming, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(self.dataset.batch, nxt)))
                    yield batch, future.result()
            finally:
                for _, future in pending:
                    future.cancel()
