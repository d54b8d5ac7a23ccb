"""Argument checks shared by the layers of both frameworks."""

from __future__ import annotations

from typing import Sequence, Union

from ..errors import ArgumentError

IntPair = Union[int, Sequence[int]]


def to_pair(value: IntPair, name: str, minimum: int = 1) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints, each at least ``minimum``.

    Raises ``ValueError`` naming the argument when ``value`` is not an int or a
    pair of ints, or when an entry is below ``minimum``.
    """
    if isinstance(value, bool):
        raise ArgumentError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    else:
        try:
            pair = tuple(value)
        except TypeError:
            raise ArgumentError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
            raise ArgumentError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ArgumentError(f"{name} must be >= {minimum} in every dimension, got {value!r}")
    return pair  # type: ignore[return-value]
