"""The registered models the ImageNet tools take: the classifiers, and those MLPerf's harness runs (``entry.mlperf``)."""

from __future__ import annotations

from ..errors import ArgumentError
from ..registry import MODELS, ModelEntry, list_models

__all__ = ["array_size", "classifier_entry", "classifier_models", "mlperf_entry", "mlperf_models", "preprocessing_name"]


def classifier_models() -> list[str]:
    """The registered classifiers (their output is class logits)."""
    return [name for name in list_models() if MODELS[name].is_classifier]


def mlperf_models() -> list[str]:
    """The registered classifiers MLPerf's ImageNet harness runs (those with an ``entry.mlperf``)."""
    return [name for name in classifier_models() if MODELS[name].mlperf is not None]


def classifier_entry(model: str) -> ModelEntry:
    """The registry entry of ``model``; :class:`~zoo.errors.ArgumentError` unless it is a classifier."""
    entry = MODELS.get(model)
    if entry is None or not entry.is_classifier:
        raise ArgumentError(f"{model!r} is not a registered classifier; those are: "
                            f"{', '.join(classifier_models()) or 'none'}")
    return entry


def mlperf_entry(model: str) -> ModelEntry:
    """The registry entry of ``model``; :class:`~zoo.errors.ArgumentError` unless it is an MLPerf ImageNet model."""
    entry = MODELS.get(model)
    if entry is None or entry.mlperf is None or not entry.is_classifier:
        raise ArgumentError(f"{model!r} is not an MLPerf ImageNet model; those are: "
                            f"{', '.join(mlperf_models()) or 'none registered'}")
    return entry


def array_size(model: str) -> tuple[int, int]:
    """(H, W) of one preprocessed image: MLPerf's ``image_size`` square, else the input's default size."""
    entry = classifier_entry(model)
    if entry.mlperf is not None and entry.mlperf.image_size:
        return entry.mlperf.image_size, entry.mlperf.image_size
    return tuple(entry.input.default_size)


def preprocessing_name(entry: ModelEntry) -> str:
    """What made a model's arrays, for messages and the index: MLPerf's function name, else zoo's."""
    if entry.mlperf is not None:
        return entry.mlperf.preprocessing_function
    target = entry.preprocessing
    if target is None:
        return "no registered preprocessing"
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))
