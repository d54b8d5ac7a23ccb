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


class ManifestError(ZooError, ValueError):
    """The weights manifest is malformed, or has no entry for a model and weights tag."""


class ChecksumError(ZooError):
    """A downloaded or cached file's size, sha256 or md5 differs from what the manifest records."""


class DownloadError(ZooError):
    """A file could not be downloaded from any of its URLs."""


class OfflineError(DownloadError):
    """A file is needed from the network while ``ZOO_OFFLINE`` forbids downloads."""
