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
    """A registry fact or the published record is malformed, or a model has no such weights tag."""


class ChecksumError(ZooError):
    """A downloaded or cached file's size, sha256 or md5 differs from what the manifest records."""


class DownloadError(ZooError):
    """A file could not be downloaded from any of its URLs."""


class OfflineError(DownloadError):
    """A file is needed from the network while ``ZOO_OFFLINE`` forbids downloads."""


class InputTypeError(ZooError, TypeError):
    """A model input or argument has the wrong type: a NumPy array where a tensor is expected, the wrong dtype."""


class ArgumentError(ZooError, ValueError):
    """An argument has a value the function does not accept (a size, count, layout or option)."""


class UnknownFrameworkError(ArgumentError):
    """A framework name is not one of those zoo supports."""


class MissingFileError(ZooError, FileNotFoundError):
    """A file or folder the user named does not exist or lacks something it should hold."""


class UnknownModelError(ZooError, KeyError):
    """A model name is not in :func:`zoo.list_models`."""

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class DiskFullError(ZooError, OSError):
    """Writing a download or a converted file ran out of disk space (or quota); the partial file is removed."""


class NotExactError(ZooError, RuntimeError):
    """A fast form of a model (folded, compiled) computes something other than the model as built."""


class CompilerError(ZooError, RuntimeError):
    """``torch.compile`` was required where it cannot run (no C++ compiler, no inductor)."""
