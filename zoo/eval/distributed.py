"""Running an evaluation across ``torchrun`` ranks: the process group, the shards, and gathering results."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DistContext", "all_reduce_counts", "gather_to_main", "init_distributed", "shard_indices"]


@dataclass
class DistContext:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes the report."""
        return self.rank == 0

    @property
    def device(self) -> str:
        """The device collectives run on: this rank's GPU with NCCL, else the CPU."""
        return f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"


def init_distributed(use_cuda: bool = False) -> DistContext:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (NCCL with ``use_cuda``, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def shard_indices(count: int, rank: int, world_size: int) -> list[int]:
    """The indices rank ``rank`` of ``world_size`` evaluates: rank, rank + N, rank + 2N, ..."""
    return list(range(rank, count, world_size))


def all_reduce_counts(counts: np.ndarray, ctx: DistContext) -> np.ndarray:
    """``counts`` summed over all ranks (every rank gets the sum)."""
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(counts.astype(np.int64)).to(ctx.device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def gather_to_main(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every rank's ``obj``, in rank order, on rank 0; None on the other ranks."""
    import torch.distributed as dist

    gathered: list | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered
