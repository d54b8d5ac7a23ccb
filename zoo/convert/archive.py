"""Safe extraction from upstream ``.tgz`` releases."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from ..errors import FormatError
from ..fileio import atomic_output


def _check_member(archive: str | os.PathLike, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or member.name.startswith(("/", "\\")) or ":" in path.parts[0]:
        raise FormatError(f"{archive}: refusing member {member.name!r}: its path leaves the extraction folder")
    if member.issym() or member.islnk() or member.isdev():
        raise FormatError(f"{archive}: refusing member {member.name!r}: links and device files are not extracted")


def extract_member(archive: str | os.PathLike, name: str, dest_dir: str | os.PathLike) -> Path:
    """Extract the one member whose base name is ``name`` into ``dest_dir``.

    Every member of the archive is checked first: one whose path is absolute,
    climbs out with ``..``, or is a link or device, makes the whole archive an
    error. The file is written under a temporary name and renamed when complete.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(archive, member)
            matches = [m for m in members if m.isfile() and PurePosixPath(m.name).name == name]
            if not matches:
                raise FormatError(f"{archive}: no member named {name}")
            source = tar.extractfile(matches[0])
            assert source is not None
            dest = Path(dest_dir) / name
            with atomic_output(dest) as out:
                shutil.copyfileobj(source, out)
            return dest
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise FormatError(f"archive not found: {archive}") from None
        raise FormatError(f"{archive}: not a readable tar archive ({error})") from None
