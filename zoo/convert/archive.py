"""Reading one member from an upstream ``.tgz`` release, without unpacking the rest.

The archive is read as a stream: tar headers are read one after the other and
only the member asked for (by base name) is copied out; the others are skipped
unread. Every size is bounded: a member whose header declares more than
``max_bytes`` is refused from its header, before any of its data is read, and
the decompressed stream as a whole is cut off at a multiple of the bound, so a
small archive that expands to gigabytes (a "gzip bomb", or a header that lies)
costs neither time, memory nor disk. Paths that leave the extraction folder,
links and device files make the archive an error, as before.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import gzip
import io
import lzma
import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

from ..errors import FormatError
from ..fileio import atomic_output

# Used when the caller knows no better bound: far above any member zoo converts.
DEFAULT_MAX_BYTES = 1 << 30
# The decompressed stream may hold, besides the member wanted, headers and other
# members (each within the bound, skipped) up to this many times the bound in all.
STREAM_FACTOR = 4
_CHUNK = 1 << 20
_LISTED = 8


class _ArchiveTooLarge(Exception):
    pass


class _BoundedReader(io.RawIOBase):
    """A read-only stream over ``raw`` that raises once more than ``limit`` bytes were read from it."""

    def __init__(self, raw: BinaryIO, limit: int):
        self.raw, self.limit, self.count = raw, limit, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # Never read unbounded: at most what the limit still allows, plus one byte to see it exceeded.
        allowed = self.limit - self.count + 1
        data = self.raw.read(allowed if size is None or size < 0 else min(size, allowed))
        self.count += len(data)
        if self.count > self.limit:
            raise _ArchiveTooLarge
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _decompressed(f: BinaryIO) -> BinaryIO:
    magic = f.read(6)
    f.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=f, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(f, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(f, "rb")
    return f


def _check_member(archive: str | os.PathLike, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if (
        path.is_absolute()
        or ".." in path.parts
        or member.name.startswith(("/", "\\"))
        or (path.parts and ":" in path.parts[0])
    ):
        raise FormatError(f"{archive}: refusing member {member.name!r}: its path leaves the extraction folder")
    if member.issym() or member.islnk() or member.isdev():
        raise FormatError(f"{archive}: refusing member {member.name!r}: links and device files are not extracted")


def _human(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


def _members(archive: str | os.PathLike, tar: tarfile.TarFile, max_bytes: int) -> Iterator[tarfile.TarInfo]:
    """The members of a stream-mode ``tar``, each checked (path, kind, declared size) from its header."""
    for member in tar:
        _check_member(archive, member)
        if member.size > max_bytes:
            raise FormatError(
                f"{archive}: member {member.name}: declares {member.size} bytes ({_human(member.size)}), more than "
                f"the {_human(max_bytes)} any member of this release can hold; refusing to read it"
            )
        yield member


@contextlib.contextmanager
def _open_member(archive: str | os.PathLike, name: str, max_bytes: int | None) -> Iterator[tuple[tarfile.TarInfo, BinaryIO, int]]:
    """The first regular member whose base name matches ``name`` (a name or ``fnmatch`` pattern), open for reading.

    Yields ``(member, stream, bound)``. Members before it are checked and skipped unread.
    """
    if not name:
        raise FormatError(f"{archive}: no archive member is known for this file; give the member's own file instead")
    bound = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    seen: list[str] = []
    try:
        with open(archive, "rb") as raw:
            stream = _BoundedReader(_decompressed(raw), bound * STREAM_FACTOR + (1 << 20))
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in _members(archive, tar, bound):
                    if member.isfile() and fnmatch.fnmatchcase(PurePosixPath(member.name).name, name):
                        source = tar.extractfile(member)
                        assert source is not None
                        yield member, source, bound
                        return
                    seen.append(member.name)
    except _ArchiveTooLarge:
        raise FormatError(
            f"{archive}: member {name}: the archive decompresses to more than {_human(bound * STREAM_FACTOR)} "
            "before or within it, far more than the release holds; refusing to read on"
        ) from None
    except FileNotFoundError:
        raise FormatError(f"archive not found: {archive}") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as error:
        raise FormatError(f"{archive}: not a readable tar archive ({error})") from None
    listed = ", ".join(seen[:_LISTED]) + (f", ... ({len(seen)} in all)" if len(seen) > _LISTED else "")
    raise FormatError(f"{archive}: no member named {name}; the archive holds: {listed or 'nothing'}")


def _copy(archive, member: tarfile.TarInfo, source: BinaryIO, out: BinaryIO, bound: int) -> None:
    copied = 0
    while chunk := source.read(min(_CHUNK, bound + 1 - copied)):
        copied += len(chunk)
        if copied > bound:  # cannot happen past the header check; kept as a guard
            raise _ArchiveTooLarge
        out.write(chunk)
    if copied != member.size:
        raise FormatError(f"{archive}: member {member.name}: truncated ({copied} of {member.size} bytes)")


def extract_member(
    archive: str | os.PathLike, name: str, dest_dir: str | os.PathLike, max_bytes: int | None = None
) -> Path:
    """Copy the one member whose base name is ``name`` into ``dest_dir``, reading only up to it.

    ``max_bytes`` bounds every member (checked from its header before its data
    is read) and, times :data:`STREAM_FACTOR`, the whole decompressed stream.
    Members before the one wanted are checked and skipped, never written. The
    file is written under a temporary name and renamed when complete. Errors
    name the archive and the member; a missing member's error lists what the
    archive holds.
    """
    with _open_member(archive, name, max_bytes) as (member, source, bound):
        dest = Path(dest_dir) / PurePosixPath(member.name).name
        with atomic_output(dest) as out:
            _copy(archive, member, source, out, bound)
        return dest


def read_member_bytes(archive: str | os.PathLike, name: str, max_bytes: int | None = None) -> tuple[str, bytes]:
    """``(member name, its bytes)`` of the first member whose base name matches ``name`` (a name or
    ``fnmatch`` pattern such as ``"*_frozen.pb"``), read in memory under the same bounds as
    :func:`extract_member`."""
    with _open_member(archive, name, max_bytes) as (member, source, bound):
        buffer = io.BytesIO()
        _copy(archive, member, source, buffer, bound)
        return member.name, buffer.getvalue()
