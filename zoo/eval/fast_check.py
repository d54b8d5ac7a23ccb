"""The fast forms the evaluations run, each checked against the model as built on its first batch.

torch runs :func:`zoo.fast.fast_inference_model` (batch norm folded,
channels_last, compiled), keras :func:`zoo.keras.fast.fast_inference_function`;
a difference above ``tolerance`` of the output's scale stops the run with
:class:`zoo.errors.NotExactError`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FastCheck", "first_batch_checked", "keras_fast_function", "torch_fast_model"]


@dataclass
class FastCheck:
    """The check of a fast form against the model as built, done on the form's first batch.

    ``max_diff`` is max |fast - plain| relative to the output's scale
    (:func:`zoo.fast.check_fast_matches`), None until the first batch ran.
    """

    what: str
    tolerance: float = 1e-4
    max_diff: float | None = None
    batch: int | None = None

    def line(self) -> str:
        """The line the scripts print: ``fast form checked against the model as built: max |diff| ...``."""
        if self.max_diff is None:
            return f"{self.what}: not checked yet (no batch ran)"
        return (f"fast form checked against the model as built: max |diff| {self.max_diff:.2e} relative to the "
                f"output's scale (tolerance {self.tolerance:g}) on a first batch of {self.batch} ({self.what})")

    def as_dict(self) -> dict:
        """The check for a JSON report."""
        return {"what": self.what, "max_diff": self.max_diff, "tolerance": self.tolerance, "batch": self.batch}


def first_batch_checked(fast: Callable[[np.ndarray], np.ndarray], plain: Callable[[np.ndarray], np.ndarray],
                        check: FastCheck, count: Callable[[np.ndarray], int] = len) -> Callable[[np.ndarray], np.ndarray]:
    """``fast``, but its first call also runs ``plain`` on the same batch and compares the two.

    A difference above ``check.tolerance`` raises :class:`zoo.errors.NotExactError`
    (every later call raises it again, so no number comes from an unchecked
    form); otherwise ``check`` records it and ``plain`` is dropped, freeing the
    model as built. ``count(batch)``: the samples in a batch, for the report.
    """
    from ..fast import check_fast_matches

    state: dict = {"plain": plain, "error": None}
    lock = threading.Lock()  # the MLPerf SUT may call from worker threads

    def run(batch: np.ndarray) -> np.ndarray:
        if state["plain"] is None and state["error"] is None:
            return fast(batch)
        with lock:
            if state["error"] is not None:
                raise state["error"]
            out = fast(batch)
            if state["plain"] is not None:
                try:
                    check.max_diff = check_fast_matches(out, state["plain"](batch),
                                                        what=check.what, tolerance=check.tolerance)
                except Exception as error:
                    state["error"] = error
                    raise
                check.batch = count(batch)
                state["plain"] = None
            return out

    return run


def torch_fast_model(net: "torch.nn.Module") -> "torch.nn.Module":
    """:func:`zoo.fast.fast_inference_model` of ``net`` (a new module; ``net`` is left as built)."""
    from ..fast import fast_inference_model

    return fast_inference_model(net)


def keras_fast_function(net: Any) -> Callable[[Any], Any]:
    """``net``'s fast form: :func:`zoo.keras.fast.fast_inference_function` (float32 in, a tensor out)."""
    from ..keras.fast import fast_inference_function

    return fast_inference_function(net)
