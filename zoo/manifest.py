"""The weights manifest: where each model's weights come from and how to check them.

The manifest is ``zoo/manifest.json`` (shipped inside the package; the repository's
``weights/manifest.json`` is a byte-identical copy that the maintainer scripts
write and a test checks). ``ZOO_MANIFEST`` names another file, e.g. a test's or a
private mirror's. Each entry is keyed ``"<model>.<tag>"`` and describes two files:

* ``upstream``: the original release (URLs in the order to try, size, sha256 or
  md5 as published by upstream or a named third party, with citations);
* ``converted``: zoo's canonical ``<model>-<tag>-<sha8>.safetensors``, whose
  file name, size, sha256 and URLs stay empty until a maintainer publishes it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import ManifestError
from .fileio import atomic_write_bytes

ENV_MANIFEST = "ZOO_MANIFEST"
PACKAGE_MANIFEST = Path(__file__).with_name("manifest.json")
# In a repository checkout: the copy beside the converted weights, kept identical to PACKAGE_MANIFEST.
REPOSITORY_COPY = PACKAGE_MANIFEST.parents[1] / "weights" / "manifest.json"
SCHEMA_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")


def converted_file_name(model: str, tag: str, sha256: str) -> str:
    """``<model>-<tag>-<first 8 hex of sha256>.safetensors``, the converted file's name."""
    return f"{model}-{tag}-{sha256[:8]}.safetensors"


@dataclass(frozen=True)
class RemoteFile:
    """A file the hub can download: name, URLs in the order to try, and what it must hash to."""

    file: str | None
    urls: tuple[str, ...]
    size: int | None
    sha256: str | None
    md5: str | None = None
    citation: Mapping[str, str] = field(default_factory=dict)

    @property
    def verifiable(self) -> bool:
        """Whether a published checksum pins the file's bytes."""
        return bool(self.sha256 or self.md5)


@dataclass(frozen=True)
class WeightsEntry:
    """One weights tag of one model: its upstream release and its converted file."""

    model: str
    tag: str
    upstream: RemoteFile
    converted: RemoteFile
    preprocessing: str
    label_offset: int
    reference_metric: Mapping[str, Any]
    citation: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.model}.{self.tag}"


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest and the file it came from."""

    path: Path
    entries: Mapping[str, WeightsEntry]

    def entry(self, model: str, tag: str) -> WeightsEntry:
        """The entry of ``model`` and ``tag``; the error lists the tags the manifest has."""
        try:
            return self.entries[f"{model}.{tag}"]
        except KeyError:
            tags = sorted(e.tag for e in self.entries.values() if e.model == model)
            known = f"its tags: {', '.join(tags)}" if tags else "it has no entry"
            raise ManifestError(f"{self.path}: no weights tag {tag!r} for model {model!r} ({known})") from None

    def select(self, names: Sequence[str]) -> list[str]:
        """Keys for ``names`` (``model.tag``, or ``model`` for all its tags); every key if ``names`` is empty."""
        if not names:
            return list(self.entries)
        keys: list[str] = []
        for name in names:
            matches = [key for key, entry in self.entries.items() if name in (key, entry.model)]
            if not matches:
                raise ManifestError(f"{self.path}: no entry {name!r}; entries: {', '.join(self.entries)}")
            keys += [key for key in matches if key not in keys]
        return keys


def manifest_path() -> Path:
    """The manifest in use: ``$ZOO_MANIFEST`` if set, else the package's ``manifest.json``."""
    override = os.environ.get(ENV_MANIFEST)
    return Path(override).expanduser() if override else PACKAGE_MANIFEST


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Read and validate the manifest at ``path`` (default: :func:`manifest_path`)."""
    path = Path(path) if path is not None else manifest_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"weights manifest not found: {path}") from None
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path}: not a readable JSON manifest ({error})") from None
    return parse_manifest(data, path)


def parse_manifest(data: Any, path: str | os.PathLike) -> Manifest:
    """Validate the JSON ``data`` of a manifest; errors name ``path`` and the entry."""
    path = Path(path)
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(f"{path}: expected an object with schema_version {SCHEMA_VERSION}")
    weights = data.get("weights")
    if not isinstance(weights, dict):
        raise ManifestError(f"{path}: 'weights' must be an object keyed '<model>.<tag>'")
    return Manifest(path, {key: _parse_entry(key, value, f"{path}: {key}") for key, value in weights.items()})


def write_manifest(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Validate ``data`` and write it to ``path`` as indented JSON, atomically (temporary name, rename)."""
    path = Path(path)
    parse_manifest(data, path)
    return atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def save_manifest(data: Mapping[str, Any], path: str | os.PathLike) -> list[Path]:
    """Write the manifest ``data`` to ``path``; for the package manifest, also to the repository copy.

    Returns the files written. The package file is the one source of truth;
    ``weights/manifest.json`` is rewritten from it whenever a checkout has that folder.
    """
    path = Path(path)
    written = [write_manifest(data, path)]
    if path.resolve() == PACKAGE_MANIFEST.resolve() and REPOSITORY_COPY.parent.is_dir():
        written.append(write_manifest(data, REPOSITORY_COPY))
    return written


def _parse_entry(key: str, value: Any, where: str) -> WeightsEntry:
    model, dot, tag = key.partition(".")
    if not (model and dot and tag):
        raise ManifestError(f"{where}: the key must be '<model>.<tag>'")
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: must be an object")
    for name in ("upstream", "converted", "preprocessing", "label_offset", "reference_metric"):
        if name not in value:
            raise ManifestError(f"{where}: missing {name!r}")
    if not isinstance(value["label_offset"], int):
        raise ManifestError(f"{where}: label_offset must be an integer")
    upstream = _parse_file(value["upstream"], f"{where}.upstream")
    if not upstream.file or not upstream.urls:
        raise ManifestError(f"{where}.upstream: needs a file name and at least one URL")
    converted = _parse_file(value["converted"], f"{where}.converted")
    if converted.sha256:
        expected = converted_file_name(model, tag, converted.sha256)
        if converted.file != expected or converted.size is None:
            raise ManifestError(f"{where}.converted: a published file needs file {expected!r} and its size")
    elif converted.file or converted.urls or converted.size is not None:
        raise ManifestError(f"{where}.converted: file, size and urls stay empty until sha256 is published")
    return WeightsEntry(
        model=model,
        tag=tag,
        upstream=upstream,
        converted=converted,
        preprocessing=str(value["preprocessing"]),
        label_offset=value["label_offset"],
        reference_metric=dict(value["reference_metric"]),
        citation=dict(value.get("citation", {})),
    )


def _parse_file(value: Any, where: str) -> RemoteFile:
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: must be an object")
    name, urls, size = value.get("file"), value.get("urls", []), value.get("size")
    sha256, md5 = value.get("sha256"), value.get("md5")
    if name is not None and (not isinstance(name, str) or not name or "/" in name or "\\" in name):
        raise ManifestError(f"{where}: file must be a bare file name, got {name!r}")
    if not isinstance(urls, list) or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
        raise ManifestError(f"{where}: urls must be a list of http(s) URLs")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise ManifestError(f"{where}: size must be a positive integer or null, got {size!r}")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise ManifestError(f"{where}: sha256 must be 64 lowercase hex digits or null, got {sha256!r}")
    if md5 is not None and not (isinstance(md5, str) and _MD5.fullmatch(md5)):
        raise ManifestError(f"{where}: md5 must be 32 lowercase hex digits or null, got {md5!r}")
    return RemoteFile(name, tuple(urls), size, sha256, md5, dict(value.get("citation", {})))
