"""Errors a user can cause. Every one derives from :class:`ZooError`."""

from __future__ import annotations


class ZooError(Exception):
    """Base class of the errors zoo raises for bad input."""


class InputShapeError(ZooError, ValueError):
    """An input tensor has the wrong rank, layout or channel count."""
