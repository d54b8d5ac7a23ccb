"""The weights in use: the registry's tags, plus the record of published converted files.

Every fact about a model and its upstream release lives in :mod:`zoo.registry`.
What a maintainer publishes later (the converted ``<model>-<tag>-<sha8>.safetensors``
files: name, size, sha256, URLs) is recorded in ``zoo/published.json``, which
``scripts/publish_weights.py`` writes. That record holds nothing else::

    {"schema_version": 2,
     "weights": {"resnet50.mlperf": {"converted": {"file": ..., "urls": [...], "size": ..., "sha256": ...}}}}

``ZOO_MANIFEST`` (or a ``manifest=`` argument) names another record to use
instead, e.g. a test's or a private mirror's; there an entry may also hold an
``"upstream"`` object (file, urls, size, sha256/md5) that replaces the
registry's upstream release of that tag, e.g. to fetch it from a local server.

:func:`render_index` generates ``weights/README.md``, the human-readable index
of every tag (``scripts/publish_weights.py --index`` writes it; a test checks it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import ManifestError, UnknownModelError
from .fileio import atomic_write_bytes
from .registry import MODELS, ModelEntry, RemoteFile, get_model_entry

__all__ = [
    "ENV_MANIFEST", "INDEX_PATH", "PUBLISHED_RECORD", "Manifest", "RemoteFile", "WeightsEntry",
    "converted_file_name", "load_manifest", "manifest_path", "parse_manifest", "render_index",
    "save_manifest", "write_index", "write_manifest",
]

ENV_MANIFEST = "ZOO_MANIFEST"
# The record of published converted files, shipped inside the package.
PUBLISHED_RECORD = Path(__file__).with_name("published.json")
# In a repository checkout: the generated index of all weights tags.
INDEX_PATH = PUBLISHED_RECORD.parents[1] / "weights" / "README.md"
SCHEMA_VERSION = 2
_NO_CONVERTED = RemoteFile(None)


def converted_file_name(model: str, tag: str, sha256: str) -> str:
    """``<model>-<tag>-<first 8 hex of sha256>.safetensors``, the converted file's name."""
    return f"{model}-{tag}-{sha256[:8]}.safetensors"


@dataclass(frozen=True)
class WeightsEntry:
    """One weights tag of one model: its upstream release and its converted file.

    The descriptive facts (preprocessing, label offset, reference metric,
    citations) are the registry's, read through :attr:`model_entry`.
    """

    model: str
    tag: str
    upstream: RemoteFile
    converted: RemoteFile

    @property
    def key(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def model_entry(self) -> ModelEntry:
        return get_model_entry(self.model)

    @property
    def preprocessing(self) -> str:
        return self.model_entry.preprocessing

    @property
    def label_offset(self) -> int:
        return self.model_entry.label_offset

    @property
    def reference_metric(self) -> Mapping[str, Any]:
        return self.model_entry.reference_metric

    @property
    def citation(self) -> Mapping[str, str]:
        return self.model_entry.citation


@dataclass(frozen=True)
class Manifest:
    """Every registered weights tag, with the converted files of the record at ``path``."""

    path: Path
    entries: Mapping[str, WeightsEntry]

    def entry(self, model: str, tag: str) -> WeightsEntry:
        """The entry of ``model`` and ``tag``; the error lists the model's tags."""
        try:
            return self.entries[f"{model}.{tag}"]
        except KeyError:
            get_model_entry(model)  # UnknownModelError lists the models
            tags = sorted(e.tag for e in self.entries.values() if e.model == model)
            known = f"its tags: {', '.join(tags)}" if tags else "it has no weights tags"
            raise ManifestError(f"no weights tag {tag!r} for model {model!r} ({known})") from None

    def select(self, names: Sequence[str]) -> list[str]:
        """Keys for ``names`` (``model.tag``, or ``model`` for all its tags); every key if ``names`` is empty."""
        if not names:
            return list(self.entries)
        keys: list[str] = []
        for name in names:
            matches = [key for key, entry in self.entries.items() if name in (key, entry.model)]
            if not matches:
                raise ManifestError(f"no weights entry {name!r}; entries: {', '.join(self.entries)}")
            keys += [key for key in matches if key not in keys]
        return keys


def manifest_path() -> Path:
    """The record in use: ``$ZOO_MANIFEST`` if set, else the package's ``published.json``."""
    override = os.environ.get(ENV_MANIFEST)
    return Path(override).expanduser() if override else PUBLISHED_RECORD


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """The registry's weights tags with the record at ``path`` (default: :func:`manifest_path`) applied."""
    path = Path(path) if path is not None else manifest_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"weights record not found: {path}") from None
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path}: not a readable JSON weights record ({error})") from None
    return parse_manifest(data, path)


def parse_manifest(data: Any, path: str | os.PathLike) -> Manifest:
    """Validate the record ``data`` and apply it to the registry; errors name ``path`` and the entry."""
    path = Path(path)
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(f"{path}: expected an object with schema_version {SCHEMA_VERSION}")
    weights = data.get("weights")
    if not isinstance(weights, dict):
        raise ManifestError(f"{path}: 'weights' must be an object keyed '<model>.<tag>'")
    patches = {key: _parse_entry(key, value, f"{path}: {key}") for key, value in weights.items()}
    entries: dict[str, WeightsEntry] = {}
    for model in MODELS.values():
        for weights_tag in model.weights:
            key = f"{model.name}.{weights_tag.tag}"
            upstream, converted = patches.get(key, (None, None))
            entries[key] = WeightsEntry(model.name, weights_tag.tag, upstream or weights_tag.upstream,
                                        converted or _NO_CONVERTED)
    return Manifest(path, entries)


def write_manifest(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Validate the record ``data`` and write it to ``path`` as indented JSON, atomically."""
    path = Path(path)
    parse_manifest(data, path)
    return atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def save_manifest(data: Mapping[str, Any], path: str | os.PathLike) -> list[Path]:
    """Write the record ``data`` to ``path``; for the package record, also regenerate ``weights/README.md``.

    Returns the files written. The package record may hold only ``converted``
    files: upstream facts belong in :mod:`zoo.registry`.
    """
    path = Path(path)
    if path.resolve() == PUBLISHED_RECORD.resolve():
        for key, value in dict(data.get("weights") or {}).items():
            if isinstance(value, dict) and "upstream" in value:
                raise ManifestError(f"{path}: {key}: the package record holds only converted files; "
                                    "upstream facts live in zoo/registry/entries.py")
    written = [write_manifest(data, path)]
    if path.resolve() == PUBLISHED_RECORD.resolve() and INDEX_PATH.parent.is_dir():
        written.append(write_index(INDEX_PATH, load_manifest(path)))
    return written


def _parse_entry(key: str, value: Any, where: str) -> tuple[RemoteFile | None, RemoteFile | None]:
    model, dot, tag = key.partition(".")
    if not (model and dot and tag):
        raise ManifestError(f"{where}: the key must be '<model>.<tag>'")
    try:
        get_model_entry(model).weights_tag(tag)
    except (UnknownModelError, ManifestError) as error:
        raise ManifestError(f"{where}: {error}") from None
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: must be an object")
    extra = sorted(set(value) - {"upstream", "converted"})
    if extra:
        raise ManifestError(f"{where}: {', '.join(map(repr, extra))}: a record holds only 'converted' (and, "
                            "in an override, 'upstream'); the other facts live in zoo/registry/entries.py")
    upstream = None
    if "upstream" in value:
        upstream = _parse_file(value["upstream"], f"{where}.upstream")
        if not upstream.file or not upstream.urls:
            raise ManifestError(f"{where}.upstream: needs a file name and at least one URL")
    converted = None
    if "converted" in value:
        converted = _parse_file(value["converted"], f"{where}.converted")
        if converted.sha256:
            expected = converted_file_name(model, tag, converted.sha256)
            if converted.file != expected or converted.size is None:
                raise ManifestError(f"{where}.converted: a published file needs file {expected!r} and its size")
        elif converted.file or converted.urls or converted.size is not None:
            raise ManifestError(f"{where}.converted: file, size and urls stay empty until sha256 is published")
    return upstream, converted


def _parse_file(value: Any, where: str) -> RemoteFile:
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: must be an object")
    urls = value.get("urls", [])
    if not isinstance(urls, list):
        raise ManifestError(f"{where}: urls must be a list of http(s) URLs")
    try:
        return RemoteFile(value.get("file"), tuple(urls), value.get("size"), value.get("sha256"), value.get("md5"),
                          dict(value.get("citation") or {}))
    except ManifestError as error:
        raise ManifestError(f"{where}: {error}") from None


# --- the generated index: weights/README.md ------------------------------------------------------


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_index(manifest: Manifest | None = None) -> str:
    """``weights/README.md``: every model's facts and weights tags, from the registry and the package record."""
    manifest = manifest or load_manifest(PUBLISHED_RECORD)
    lines = [
        "# weights/",
        "",
        "<!-- Generated from zoo/registry/entries.py and zoo/published.json by "
        "`python scripts/publish_weights.py --index`; do not edit. -->",
        "",
        "An index of every model's weights tags: where the upstream release comes from, how it is checked,",
        "and the converted file once published. The facts live in `zoo/registry/entries.py`; the published converted",
        "files in `zoo/published.json` (written by `scripts/publish_weights.py`). Without network, copy the",
        "upstream file into `$ZOO_HOME/upstream/` (default `~/.cache/zoo/upstream/`) and set `ZOO_OFFLINE=1`.",
        "Converted `.safetensors` files written here are ignored by git.",
        "",
        "| model | tag | upstream file | size (bytes) | checksum | source | converted file | published at |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in manifest.entries.values():
        up, conv = entry.upstream, entry.converted
        if up.sha256:
            checksum = f"sha256 `{up.sha256}`"
        elif up.md5:
            checksum = f"md5 `{up.md5}`"
        else:
            checksum = "none published"
        sources = "; ".join(f"{fact}: {up.citation[fact]}" for fact in ("urls", "size", "sha256", "md5")
                            if up.citation.get(fact))
        urls = "<br>".join(up.urls)
        published = "<br>".join(conv.urls) if conv.urls else "not published yet"
        lines.append("| " + " | ".join(_cell(c) for c in (
            entry.model, entry.tag, f"`{up.file}`<br>{urls}", up.size if up.size is not None else "unpublished",
            checksum, sources, f"`{conv.file}`" if conv.file else "-", published)) + " |")
    lines += ["", "| model | outputs | preprocessing | label offset | reference metric |", "|---|---|---|---|---|"]
    for model in MODELS.values():
        metric = ", ".join(f"{k}: {v}" for k, v in model.reference_metric.items())
        lines.append("| " + " | ".join(_cell(c) for c in (
            model.name, f"{model.num_classes or '-'}: {model.categories}",
            (f"`{model.preprocessing}`" if model.preprocessing else f"none: {model.input.description}")
            + f" ({model.citation.get('preprocessing', '')})",
            f"{model.label_offset:+d} ({model.citation.get('label_offset', '')})", metric)) + " |")
    return "\n".join(lines) + "\n"


def write_index(path: str | os.PathLike = INDEX_PATH, manifest: Manifest | None = None) -> Path:
    """Write :func:`render_index` to ``path`` (default ``weights/README.md``)."""
    return atomic_write_bytes(Path(path), render_index(manifest).encode("utf-8"))
