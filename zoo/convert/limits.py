"""Ceilings for what an upstream file may declare, derived from the model's name table.

A parser never allocates what a file merely declares (a length, an element
count, a shape) before checking it against the bytes that remain and against
:func:`max_tensor_bytes`: the model's largest tensor, with headroom.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from ..registry import MODELS, name_table

HEADROOM = 4  # a tensor may be this many times the model's largest (float64 copies, future variants)
MIN_CEILING = 1 << 20  # small plumbing constants are always allowed


def max_tensor_bytes(shapes: Iterable[Sequence[int]], itemsize: int = 4, headroom: int = HEADROOM) -> int:
    """The most bytes one tensor of a model with these ``shapes`` may declare."""
    largest = max((math.prod(int(n) for n in shape) for shape in shapes), default=0)
    return max(largest * itemsize * headroom, MIN_CEILING)


def zoo_max_tensor_bytes() -> int:
    """The ceiling for a file whose model is not named: the largest tensor of any registered model, with headroom."""
    return max_tensor_bytes(spec.upstream_shape for model in MODELS for spec in name_table(model))
