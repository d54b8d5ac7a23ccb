"""Top-k labels of logits and the top-1/top-5 counts of predictions against labels."""

from __future__ import annotations

import numpy as np

from ..errors import InputShapeError

__all__ = ["TOP_K", "metric", "score", "top_k_labels"]

TOP_K = 5


def top_k_labels(logits: np.ndarray, label_offset: int, k: int = TOP_K) -> np.ndarray:
    """(B, k) labels of the k largest logits, best first: class index + ``label_offset``.

    Ties go to the lower class index, as ``np.argmax`` (MLPerf's post-processing) does.
    """
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise InputShapeError(f"logits must be (batch, classes), got shape {logits.shape}")
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return order + label_offset


def score(top5: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[top-1 correct, top-5 correct, count] of (N, 5) predictions against (N,) labels."""
    return np.array([int((top5[:, 0] == labels).sum()), int((top5 == labels[:, None]).any(1).sum()), len(labels)])


def metric(correct: int, count: int) -> dict:
    """``{"correct": n, "percent": 100 n / count}`` for a report."""
    return {"correct": int(correct), "percent": 100.0 * correct / count if count else 0.0}
