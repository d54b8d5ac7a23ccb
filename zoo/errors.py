"""Errors a user can cause. Every one derives from :class:`ZooError`."""

from __future__ import annotations


class ZooError(Exception):
    """Base class of the errors zoo raises for bad input."""


class InputShapeError(ZooError, ValueError):
    """An input tensor has the wrong rank, layout or channel count."""


class FormatError(ZooError, ValueError):
    """A weights or upstream file is unreadable, truncated, or lacks or adds a tensor."""


class TensorShapeError(FormatError):
    """A tensor in a weights or upstream file has the wrong shape."""
