"""Weights by tag: the cache, downloads, and converting upstream releases locally.

:func:`resolve_weights` is what every builder asks for its ``weights`` argument:
a path is a converted file, anything else a weights tag of the model.
``converted_weights("resnet50", "mlperf")`` returns the converted ``.safetensors``
file of a weights tag, taking the first of:

1. a converted file already in the cache (``$ZOO_HOME/weights``);
2. the published converted file, downloaded (``$ZOO_WEIGHTS_URL`` first, then the
   manifest's URLs) and checked against the manifest's size and sha256;
3. the upstream release, downloaded into ``$ZOO_HOME/upstream`` (or found there),
   checked against its published checksum, and converted into the cache.

Downloads resume from a partial file with an HTTP ``Range`` request, retry
transient failures with exponential backoff, go through a temporary name that is
renamed only once the checksum matches, and hold a lock file so that several
processes fetching the same file do not corrupt it (the lock file is removed
afterwards). A host name that does not resolve (no network), a redirect loop and
a 4xx are not retried: the error says at once which file to copy where.
``ZOO_OFFLINE=1`` forbids network access: cached files still work, anything else
raises :class:`~zoo.errors.OfflineError`.

Every download ends: each URL gets ``ZOO_DOWNLOAD_ALLOWANCE_S`` seconds plus its
size divided by ``ZOO_MIN_BYTES_PER_S`` (all attempts together), and an attempt
during which no byte arrives for ``ZOO_STALL_TIMEOUT_S`` seconds fails. A file
with no published checksum is accepted only when its length equals the
server's ``Content-Length`` (and the recorded size, if any); otherwise it stays
a resumable ``.part`` file. Cached converted files are checked (size, sha256)
before use, with a ``<file>.verified`` stamp (size, mtime, sha256) so that a
cache hit does not rehash the file; a mismatch deletes the file and fetches it
again.
"""

from __future__ import annotations

import errno
import hashlib
import html.parser
import json
import logging
import os
import socket
import struct
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3.exceptions

from .convert.canonical import CONVERTER_VERSION, sha256_file
from .errors import ArgumentError, ChecksumError, DiskFullError, DownloadError, FormatError, OfflineError
from .manifest import Manifest, RemoteFile, WeightsEntry, converted_file_name, load_manifest
from .registry import get_model_entry
from .progress import Progress

ENV_HOME = "ZOO_HOME"
ENV_OFFLINE = "ZOO_OFFLINE"
ENV_WEIGHTS_URL = "ZOO_WEIGHTS_URL"
ENV_QUIET = "ZOO_QUIET"
ENV_MIN_BYTES_PER_S = "ZOO_MIN_BYTES_PER_S"
ENV_STALL_TIMEOUT_S = "ZOO_STALL_TIMEOUT_S"
ENV_DOWNLOAD_ALLOWANCE_S = "ZOO_DOWNLOAD_ALLOWANCE_S"

# (connect, read) seconds: a read timeout is the longest silence between two packets.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
# Each URL's time budget, all attempts together: the allowance plus size / throughput.
DEFAULT_MIN_BYTES_PER_S = 50_000.0
DEFAULT_ALLOWANCE_S = 120.0
# A redirect chain longer than this is a loop (requests' own limit is 30).
MAX_REDIRECTS = 10
# A stamp written less than this long after the file's mtime is not trusted: file systems
# whose clock ticks coarsely could give a rewrite right after stamping the same mtime.
_RACY_STAMP_NS = 2_000_000_000
_CHUNK = 1 << 20
# Small enough that a dropped connection loses little of what already arrived.
_STREAM_CHUNK = 1 << 16
_SMALL_CHUNK = 1 << 12
# An HTML page larger than this is not a Google Drive interstitial.
_MAX_HTML_BYTES = 1 << 20

log = logging.getLogger(__name__)


class UnverifiedFileWarning(UserWarning):
    """A file was downloaded whose upstream publishes no checksum: its bytes are unverified."""


class CorruptCacheWarning(UserWarning):
    """A cached file failed its check and was deleted; it is fetched again."""


def _env_number(name: str, default: float) -> float:
    """A positive number from the environment variable ``name``, else ``default``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ArgumentError(f"{name}={text!r}: expected a positive number")
    return value


def cache_dir() -> Path:
    """The cache root: ``$ZOO_HOME``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``."""
    if home := os.environ.get(ENV_HOME):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "zoo"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def is_offline() -> bool:
    """Whether ``ZOO_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return _env_true(ENV_OFFLINE)


def resolve_weights(weights: str | os.PathLike, model_name: str) -> Path:
    """The converted file that a builder's ``weights`` names: a path, or a weights tag of ``model_name``.

    An existing file is returned as it is. A name that looks like a path (a
    ``.safetensors`` suffix, or a folder separator) but is no file raises
    :class:`~zoo.errors.FormatError`; anything else is a tag (``"mlperf"``,
    ``"nvidia"``), resolved by :func:`converted_weights`: the cached file, else
    the published one downloaded, else the upstream file fetched and converted
    locally.
    """
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if path.suffix == ".safetensors" or os.sep in str(weights) or "/" in str(weights):
        raise FormatError(f"weights file not found: {path}")
    return converted_weights(model_name, str(weights))


def converted_weights(model: str, tag: str, manifest: str | os.PathLike | Manifest | None = None) -> Path:
    """The converted ``.safetensors`` file of ``model``'s weights ``tag``: cached, downloaded or converted.

    ``manifest`` overrides the manifest in use (default: ``$ZOO_MANIFEST``, else the
    package's). Raises :class:`~zoo.errors.ManifestError` for an unknown tag,
    :class:`~zoo.errors.OfflineError` when offline with nothing usable cached,
    :class:`~zoo.errors.DownloadError` or :class:`~zoo.errors.ChecksumError` when
    no URL gives the right bytes.
    """
    loaded = _manifest(manifest)
    entry = loaded.entry(model, tag)
    weights_dir = cache_dir() / "weights"
    weights_dir.mkdir(parents=True, exist_ok=True)
    # One process at a time looks up, downloads or converts this tag.
    with _file_lock(weights_dir / f".{entry.model}-{entry.tag}.lock"):
        if cached := find_cached_converted(entry, weights_dir):
            _say(f"{model}.{tag}: using the cached converted file {cached}")
            return cached
        if (urls := published_urls(entry)) and not is_offline():
            try:
                path = download(urls, weights_dir / entry.converted.file, size=entry.converted.size,
                                sha256=entry.converted.sha256)
                if entry.converted.sha256:
                    _write_stamp(path, entry.converted.sha256)  # just verified: the next hit need not rehash
                _say(f"{model}.{tag}: downloaded the published converted file {path}")
                return path
            except DownloadError as error:
                warnings.warn(f"{error}\nfalling back to converting the upstream release locally", stacklevel=2)
        upstream = fetch_upstream(model, tag, manifest=loaded)
        path = convert_upstream(entry, upstream, weights_dir)
        _say(f"{model}.{tag}: converted the upstream release {upstream.name} locally into {path}")
        return path


def _say(message: str) -> None:
    """Tell the user which route the weights took (stderr, so pipelines' stdout stays clean)."""
    if not _env_true(ENV_QUIET):
        print(f"zoo: {message}", file=sys.stderr)


def fetch_upstream(model: str, tag: str, dest_dir: str | os.PathLike | None = None,
                   manifest: str | os.PathLike | Manifest | None = None) -> Path:
    """The upstream release of ``model``'s ``tag`` in ``dest_dir`` (default ``$ZOO_HOME/upstream``).

    A file already there is checked, not fetched again. With no published checksum
    the download warns (:class:`UnverifiedFileWarning`) with the sha256 it saw.
    """
    entry = _manifest(manifest).entry(model, tag)
    upstream = entry.upstream
    dest = Path(dest_dir) if dest_dir is not None else cache_dir() / "upstream"
    target = dest / upstream.file
    if target.is_file():
        try:
            verify_file(target, upstream, source=str(target))
            return target
        except ChecksumError as error:
            if is_offline():
                # Offline, this copy is the only one: keep it and say what is wrong with it.
                raise ChecksumError(f"{error}; replace {target} with a good copy of {upstream.describe()}, "
                                    f"or unset {ENV_OFFLINE} to download it again") from None
            # A cut or damaged earlier download (or a bit flip on disk): the network has a good copy.
            _discard(target, str(error).removeprefix(f"{target}: ").removeprefix(f"{upstream.file} "))
    if is_offline():
        raise OfflineError(
            f"{entry.key}: {ENV_OFFLINE} is set and neither a converted file in {cache_dir() / 'weights'} "
            f"nor the upstream release in {dest} is present; copy {upstream.describe()} to {target} "
            f"(from {upstream.urls[0]}), or unset {ENV_OFFLINE} to download it"
        )
    try:
        path = download(upstream.urls, target, size=upstream.size, sha256=upstream.sha256, md5=upstream.md5)
    except DownloadError as error:
        raise DownloadError(
            f"{entry.key}: {error}. Without network, get {upstream.describe()} by other means and copy it "
            f"to {target}; set {ENV_OFFLINE}=1 to use only the files in {cache_dir()} and never try the network"
        ) from None
    if not upstream.verifiable:
        warnings.warn(
            f"{upstream.urls[0]}: upstream publishes no checksum for {upstream.file}; its bytes are UNVERIFIED. "
            f"sha256 seen: {sha256_file(path)} ({path.stat().st_size} bytes). "
            "Compare it with a trusted copy, or pin it with `scripts/fetch_upstream.py --record`.",
            UnverifiedFileWarning,
            stacklevel=2,
        )
    return path


def convert_upstream(entry: WeightsEntry, source: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert ``source`` (``entry``'s upstream file) into ``out_dir/<model>-<tag>-<sha8>.safetensors``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    convert = get_model_entry(entry.model).load("converter")
    fd, partial = tempfile.mkstemp(prefix=f".{entry.model}-{entry.tag}.", suffix=".safetensors", dir=out_dir)
    os.close(fd)
    try:
        convert(source, partial)
        digest = sha256_file(partial)
        target = out_dir / converted_file_name(entry.model, entry.tag, digest)
        os.replace(partial, target)
    except BaseException as error:
        Path(partial).unlink(missing_ok=True)
        if _is_disk_full(error):
            raise DiskFullError(error.errno, f"no space left writing the converted file {partial} "
                                f"({error.strerror}); the partial file was removed. Free space in {out_dir} "
                                f"or point {ENV_HOME} at another disk") from error
        raise
    _write_stamp(target, digest)
    if entry.converted.sha256 and digest != entry.converted.sha256:
        warnings.warn(
            f"{target}: converted locally to sha256 {digest}, but the published {entry.converted.file} has "
            f"{entry.converted.sha256}: the upstream bytes or the converter version differ",
            stacklevel=2,
        )
    return target


def find_cached_converted(entry: WeightsEntry, weights_dir: str | os.PathLike) -> Path | None:
    """A usable, verified converted file of ``entry`` in ``weights_dir``, or None.

    The published file if present and of the recorded size and sha256; else the
    newest ``<model>-<tag>-*.safetensors`` that the current converter wrote from
    the manifest's upstream bytes (read from the file's safetensors metadata)
    and whose sha256 starts with the 8 hex digits its name carries. A file
    failing its check is deleted (with a :class:`CorruptCacheWarning`), never
    returned. Hashes come from a ``<file>.verified`` stamp while the file's size
    and mtime match it, so a cache hit does not rehash the file.
    """
    weights_dir = Path(weights_dir)
    published = entry.converted
    if published.file and (path := weights_dir / published.file).is_file():
        problem = _cache_problem(path, published.size, published.sha256)
        if problem is None:
            return path
        _discard(path, problem)
    candidates = sorted(weights_dir.glob(f"{entry.model}-{entry.tag}-*.safetensors"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        metadata = _safetensors_metadata(path)
        if metadata.get("model") != entry.model or metadata.get("converter_version") != CONVERTER_VERSION:
            continue
        if entry.upstream.sha256 and metadata.get("source_sha256") != entry.upstream.sha256:
            continue
        digest = _cached_sha256(path)
        if not path.name.endswith(f"-{digest[:8]}.safetensors"):
            _discard(path, f"has sha256 {digest}, which does not match its name")
            continue
        return path
    return None


def _cache_problem(path: Path, size: int | None, sha256: str | None) -> str | None:
    """What is wrong with cached ``path`` given its recorded ``size`` and ``sha256``; None if nothing."""
    found = path.stat().st_size
    if size is not None and found != size:
        return f"has {found} bytes, expected {size}"
    if sha256 and (got := _cached_sha256(path)) != sha256:
        return f"has sha256 {got}, expected {sha256}"
    return None


def _discard(path: Path, problem: str) -> None:
    warnings.warn(f"{path}: cached file {problem}; deleted it, fetching it again", CorruptCacheWarning,
                  stacklevel=3)
    path.unlink(missing_ok=True)
    _stamp_path(path).unlink(missing_ok=True)


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _write_stamp(path: Path, sha256: str) -> None:
    """Record that ``path``, at its current size and mtime, has ``sha256`` (best effort: a speed-up only)."""
    try:
        stat = path.stat()
        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256, "stamped_ns": time.time_ns()}
        _stamp_path(path).write_text(json.dumps(record))
    except OSError:
        pass


def _cached_sha256(path: Path) -> str:
    """``path``'s sha256: from its stamp while size and mtime still match it, else computed (and stamped)."""
    stat = path.stat()
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        if (stamp["size"] == stat.st_size and stamp["mtime_ns"] == stat.st_mtime_ns
                and stamp["stamped_ns"] - stat.st_mtime_ns > _RACY_STAMP_NS and isinstance(stamp["sha256"], str)):
            return stamp["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = sha256_file(path)
    _write_stamp(path, digest)
    return digest


def published_urls(entry: WeightsEntry) -> list[str]:
    """Where the converted file is published: ``$ZOO_WEIGHTS_URL/<file>`` first, then the manifest's URLs."""
    if not entry.converted.file:
        return []
    urls = list(entry.converted.urls)
    if base := os.environ.get(ENV_WEIGHTS_URL):
        urls.insert(0, base.rstrip("/") + "/" + entry.converted.file)
    return urls


def download(urls: Sequence[str], dest: str | os.PathLike, size: int | None = None, sha256: str | None = None,
             md5: str | None = None, timeout: float | tuple[float, float] | None = None,
             retries: int | None = None, backoff_s: float | None = None,
             min_bytes_per_s: float | None = None, allowance_s: float | None = None) -> Path:
    """Download ``dest`` from the first of ``urls`` that gives bytes matching ``size``/``sha256``/``md5``.

    The bytes go to ``.<name>.part`` beside ``dest`` (kept between attempts and
    resumed with a ``Range`` request) and are renamed to ``dest`` only once
    verified; a lock file serialises processes fetching the same ``dest``. Each
    URL gets ``retries`` more attempts after a connection error, timeout, 5xx or
    short body, ``backoff_s * 2**n`` seconds apart; a 4xx, a redirect loop, an
    unresolvable host or an unexpected HTML page moves on to the next URL. Google
    Drive's "can't scan this file for viruses" page is confirmed and followed.

    Each URL has ``allowance_s + size / min_bytes_per_s`` seconds for all its
    attempts (defaults: ``$ZOO_DOWNLOAD_ALLOWANCE_S``, ``$ZOO_MIN_BYTES_PER_S``;
    the size is ``size``, else the server's, else the bytes received so far).
    ``timeout`` is (connect, stall) seconds, the stall being the longest wait
    for a byte (default: 10 s, ``$ZOO_STALL_TIMEOUT_S``). Without ``sha256`` or
    ``md5`` the file is accepted only when its length equals the server's
    ``Content-Length``; else it stays partial and the call raises. Running out
    of disk space raises :class:`DiskFullError` naming the file and removes the
    partial file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = RemoteFile(dest.name, tuple(urls), size, sha256, md5)
    limits = _Limits.resolve(timeout, retries, backoff_s, min_bytes_per_s, allowance_s)
    with _file_lock(dest.with_name(f".{dest.name}.lock")):
        if dest.is_file():  # another process finished it while this one waited
            verify_file(dest, expected, source=str(dest))
            return dest
        if is_offline():
            raise OfflineError(f"{ENV_OFFLINE} is set: not downloading {dest.name} from {urls[0]}")
        part = dest.with_name(f".{dest.name}.part")
        failures: list[str] = []
        checksum_failed = False
        with requests.Session() as session:
            session.max_redirects = MAX_REDIRECTS
            for url in urls:
                try:
                    total = _fetch_with_retries(session, url, part, dest, size, limits)
                    if not expected.verifiable:
                        _check_complete(part, total)
                    verify_file(part, expected, source=url)
                except _TransferError as error:
                    failures.append(f"{url}: {error}")
                    continue
                except ChecksumError as error:
                    part.unlink(missing_ok=True)
                    failures.append(str(error))
                    checksum_failed = True
                    continue
                os.replace(part, dest)
                log.info("downloaded %s to %s", url, dest)
                return dest
        error_type = ChecksumError if checksum_failed else DownloadError
        kept = f" (the {part.stat().st_size} bytes received are kept in {part} to resume)" if part.is_file() else ""
        raise error_type(f"could not download {dest.name}: " + "; ".join(failures) + kept)


def _check_complete(part: Path, total: int | None) -> None:
    """With no checksum to go by, only the server's declared length tells a whole file from a cut one."""
    have = part.stat().st_size if part.is_file() else 0
    if total is None:
        raise _TransferError("no checksum is published and the server did not say how long the file is "
                             "(no Content-Length): cannot tell a complete download from a cut one", retryable=False)
    if have != total:
        raise _TransferError(f"received {have} of the {total} bytes the server announced", retryable=False)


def verify_file(path: str | os.PathLike, expected: RemoteFile, source: str) -> None:
    """Raise :class:`~zoo.errors.ChecksumError` naming ``source`` if ``path`` differs from ``expected``."""
    path = Path(path)
    found_size = path.stat().st_size
    if expected.size is not None and found_size != expected.size:
        raise ChecksumError(f"{source}: {expected.file} has {found_size} bytes, expected {expected.size}")
    for algorithm, want in (("sha256", expected.sha256), ("md5", expected.md5)):
        if want:
            got = _hash_file(path, algorithm)
            if got != want:
                raise ChecksumError(f"{source}: {expected.file} has {algorithm} {got}, expected {want}")


class _TransferError(Exception):
    """One URL failed; ``retryable`` says whether another attempt at it may succeed."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class _Limits:
    """The timing of one download: connect and stall timeouts, retries, backoff, throughput floor, allowance."""

    def __init__(self, connect_s: float, stall_s: float, retries: int, backoff_s: float, min_bytes_per_s: float,
                 allowance_s: float) -> None:
        self.connect_s, self.stall_s, self.retries, self.backoff_s = connect_s, stall_s, retries, backoff_s
        self.min_bytes_per_s, self.allowance_s = min_bytes_per_s, allowance_s

    @classmethod
    def resolve(cls, timeout: float | tuple[float, float] | None, retries: int | None, backoff_s: float | None,
                min_bytes_per_s: float | None, allowance_s: float | None) -> "_Limits":
        if timeout is None:
            connect_s, stall_s = DEFAULT_TIMEOUT[0], _env_number(ENV_STALL_TIMEOUT_S, DEFAULT_TIMEOUT[1])
        elif isinstance(timeout, tuple):
            connect_s, stall_s = timeout
        else:
            connect_s = stall_s = float(timeout)
        return cls(connect_s, stall_s, DEFAULT_RETRIES if retries is None else retries,
                   DEFAULT_BACKOFF_S if backoff_s is None else backoff_s,
                   min_bytes_per_s or _env_number(ENV_MIN_BYTES_PER_S, DEFAULT_MIN_BYTES_PER_S),
                   allowance_s or _env_number(ENV_DOWNLOAD_ALLOWANCE_S, DEFAULT_ALLOWANCE_S))


class _Deadline:
    """One URL's time budget, all attempts together: the allowance plus the file's length / the throughput floor."""

    def __init__(self, limits: _Limits, size: int | None) -> None:
        self.limits, self.total = limits, size
        self.start = time.monotonic()

    def budget_s(self, received: int = 0) -> float:
        return self.limits.allowance_s + max(self.total or 0, received) / self.limits.min_bytes_per_s

    def remaining_s(self, received: int = 0) -> float:
        return self.start + self.budget_s(received) - time.monotonic()

    def check(self, received: int) -> None:
        if self.remaining_s(received) <= 0:
            raise self.exceeded(received)

    def exceeded(self, received: int) -> _TransferError:
        of_total = f" of {self.total}" if self.total else ""
        return _TransferError(
            f"too slow: {received}{of_total} bytes after {time.monotonic() - self.start:.1f} s; the limit is "
            f"{self.budget_s(received):.1f} s ({ENV_DOWNLOAD_ALLOWANCE_S}={self.limits.allowance_s:g} plus the size "
            f"at {ENV_MIN_BYTES_PER_S}={self.limits.min_bytes_per_s:g})", retryable=False)

    def timeout(self, received: int) -> tuple[float, float]:
        """(connect, read) timeouts for the next network wait: never beyond the deadline."""
        left = max(self.remaining_s(received), 0.001)
        return min(self.limits.connect_s, left), min(self.limits.stall_s, left)


def _fetch_with_retries(session: requests.Session, url: str, part: Path, dest: Path, size: int | None,
                        limits: _Limits) -> int | None:
    """Fetch ``url`` into ``part``; return the file's full length as the server declared it (None if unknown)."""
    deadline = _Deadline(limits, size)
    for attempt in range(limits.retries + 1):
        try:
            return _fetch_once(session, url, part, dest, size, deadline)
        except requests.RequestException as error:
            failure = _transfer_error(error, deadline, part)
        except _TransferError as error:
            failure = error
        delay = limits.backoff_s * 2**attempt
        if not failure.retryable or attempt == limits.retries:
            raise failure
        if deadline.remaining_s(_size(part)) <= delay:
            raise _TransferError(f"{failure}; no time left to retry", retryable=False) from None
        log.warning("%s: %s; retrying in %.1f s (%d of %d)", url, failure, delay, attempt + 1, limits.retries)
        time.sleep(delay)
    raise AssertionError("unreachable")


def _transfer_error(error: BaseException, deadline: _Deadline, part: Path) -> _TransferError:
    """A failed request or read as a :class:`_TransferError`, retryable unless waiting cannot help."""
    received = _size(part)
    if deadline.remaining_s(received) <= 0:
        return deadline.exceeded(received)
    if isinstance(error, requests.TooManyRedirects):
        return _TransferError(f"redirect loop (more than {MAX_REDIRECTS} redirects)", retryable=False)
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                          requests.exceptions.MissingSchema)):
        return _TransferError(_describe(error), retryable=False)
    if isinstance(error, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
        return _TransferError(f"timed out connecting ({error.__class__.__name__})", retryable=True)
    if isinstance(error, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return _TransferError(f"timed out: no byte for {deadline.limits.stall_s:g} s "
                              f"({ENV_STALL_TIMEOUT_S}) ({error.__class__.__name__})", retryable=True)
    if isinstance(error, requests.RequestException):
        # No DNS answer means no network (or a wrong host): waiting will not help.
        return _TransferError(_describe(error), retryable=not _is_name_resolution_failure(error))
    return _TransferError(f"connection failed: {error.__class__.__name__}: {error}", retryable=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _fetch_once(session: requests.Session, url: str, part: Path, dest: Path, size: int | None,
                deadline: _Deadline, confirmed: bool = False) -> int | None:
    """One GET of ``url`` into ``part``, resuming from its current length; the declared full length, or None."""
    offset = _size(part) if part.exists() else 0
    if size is not None and offset >= size:
        if offset == size:
            return size  # complete from an earlier attempt; verification follows
        part.unlink()
        offset = 0
    deadline.check(offset)
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, headers=headers, stream=True, timeout=deadline.timeout(offset)) as response:
        if response.status_code == 416:
            if offset and response.headers.get("Content-Range", "") == f"bytes */{offset}":
                return offset  # the partial file is the whole file already
            part.unlink(missing_ok=True)  # the partial file does not fit the remote one: start over
            raise _TransferError("HTTP 416: the server refused to resume; restarting", retryable=True)
        if response.status_code >= 500:
            raise _TransferError(f"HTTP {response.status_code}", retryable=True)
        if response.status_code >= 400:
            raise _TransferError(f"HTTP {response.status_code}", retryable=False)
        if "text/html" in response.headers.get("Content-Type", ""):
            next_url = None if confirmed else _drive_confirmation_url(response, url)
            if next_url is None:
                raise _TransferError("the server sent an HTML page instead of the file", retryable=False)
            log.info("%s: confirming Google Drive's virus-scan page", url)
            return _fetch_once(session, next_url, part, dest, size, deadline, confirmed=True)
        resumed = response.status_code == 206
        content_range = response.headers.get("Content-Range", "")
        if resumed and not content_range.startswith(f"bytes {offset}-"):
            part.unlink(missing_ok=True)
            raise _TransferError(f"bad Content-Range {content_range!r}", retryable=True)
        # A 200 to a Range request means the server ignores ranges: take the whole body.
        start = offset if resumed else 0
        length = response.headers.get("Content-Length")
        expected_body = int(length) if length is not None and length.isdigit() else None
        declared = _declared_total(content_range) if resumed else expected_body
        if declared is None and expected_body is not None:
            declared = start + expected_body
        if declared is not None and deadline.total is None:
            deadline.total = declared
        received = 0
        name = part.name.removeprefix(".").removesuffix(".part")
        progress = Progress(size or declared or 0, name, enabled=not _env_true(ENV_QUIET), unit="MB", scale=1e6,
                            interval=0.5, terminal_only=True, initial=start)
        sock = _socket_of(response)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while True:
                    deadline.check(start + received)
                    if sock is not None:
                        try:
                            sock.settimeout(deadline.timeout(start + received)[1])
                        except OSError:  # closed once the body has been read
                            sock = None
                    try:
                        chunk = _read_some(response.raw)
                    except (urllib3.exceptions.HTTPError, OSError) as error:
                        raise _transfer_error(error, deadline, part) from None
                    if not chunk:
                        break
                    _write_chunk(f, chunk)
                    received += len(chunk)
                    progress.update_to(start + received)
        except OSError as error:
            if _is_disk_full(error):
                part.unlink(missing_ok=True)
                raise DiskFullError(error.errno, f"no space left writing {dest} (partial file {part}, "
                                    f"{error.strerror}); the partial file was removed. Free space in "
                                    f"{dest.parent} or point {ENV_HOME} at another disk") from error
            raise
        finally:
            progress.close()
        if expected_body is not None and received != expected_body:
            raise _TransferError(f"connection closed after {received} of {expected_body} bytes", retryable=True)
        return declared


def _declared_total(content_range: str) -> int | None:
    """The complete length in ``bytes a-b/total``, or None when it is ``*`` or malformed."""
    total = content_range.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def _read_some(raw) -> bytes:
    """Whatever bytes have arrived (up to a chunk), without waiting for a full chunk (urllib3 2's read1)."""
    if hasattr(raw, "read1"):
        return raw.read1(_STREAM_CHUNK, decode_content=True)
    return raw.read(_SMALL_CHUNK, decode_content=True)  # urllib3 1.x: small reads keep the checks frequent


def _write_chunk(f, chunk: bytes) -> None:
    f.write(chunk)


def _is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _socket_of(response: requests.Response):
    """The socket under a streamed response (to bound each read by the deadline), or None if hidden."""
    connection = getattr(response.raw, "_connection", None) or getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        buffered = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(buffered, "raw", None), "_sock", None)
    return sock if hasattr(sock, "settimeout") else None


def _drive_confirmation_url(response: requests.Response, url: str) -> str | None:
    """The URL that confirms Google Drive's "can't scan this file for viruses" page, or None.

    Older pages set a ``download_warning_*`` cookie whose value is the confirm token
    for a second request to the same URL; newer ones hold a form (GET to
    ``drive.usercontent.google.com/download``) whose hidden inputs (id, export,
    confirm, uuid) are that request's query; some link to ``/uc?...&confirm=...``.
    """
    for name, value in response.cookies.items():
        if name.startswith("download_warning"):
            return _with_query(url, confirm=value)
    body = response.raw.read(_MAX_HTML_BYTES, decode_content=True).decode("utf-8", "replace")
    page = _InterstitialParser()
    page.feed(body)
    if page.form_action and page.form_fields:
        return _with_query(urljoin(url, page.form_action), **page.form_fields)
    if page.confirm_link:
        return urljoin(url, page.confirm_link)
    return None


class _InterstitialParser(html.parser.HTMLParser):
    """The first form's action and hidden inputs, and the first link carrying ``confirm=``."""

    def __init__(self) -> None:
        super().__init__()
        self.form_action: str | None = None
        self.form_fields: dict[str, str] = {}
        self.confirm_link: str | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form_action is None:
            self.form_action, self._in_form = attributes.get("action", ""), True
        elif tag == "input" and self._in_form and attributes.get("type") == "hidden" and attributes.get("name"):
            self.form_fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "a" and self.confirm_link is None and "confirm=" in attributes.get("href", ""):
            self.confirm_link = attributes["href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _describe(error: requests.RequestException) -> str:
    if isinstance(error, requests.Timeout):
        return f"timed out ({error.__class__.__name__})"
    if _is_name_resolution_failure(error):
        host = urlsplit(error.request.url).hostname if error.request is not None else None
        return f"cannot resolve the host name{' ' + host if host else ''} (no network, or no DNS)"
    return f"{error.__class__.__name__}: {error}"


def _is_name_resolution_failure(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it, however deeply wrapped) is a failed DNS lookup."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, socket.gaierror) or type(item).__name__ == "NameResolutionError":
            return True
        pending += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return False


def _hash_file(path: Path, algorithm: str) -> str:
    if algorithm == "sha256":
        return sha256_file(path)
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _manifest(manifest: str | os.PathLike | Manifest | None) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)


def _safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (8-byte little-endian length, then JSON); {} if unreadable."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100_000_000:
                return {}
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent), blocking until it is free; remove it after.

    The OS releases the lock if the process dies. The holder deletes the file
    before unlocking; a process that was waiting on the deleted file notices
    (its handle no longer names ``path``) and locks the new one instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.name == "nt":
        import msvcrt

        with open(path, "a+b") as handle:
            handle.seek(0)  # msvcrt locks bytes from the current position
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)  # retries for about 10 s, then raises
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        try:
            path.unlink()
        except OSError:  # another process has it open (Windows refuses), or removed it already
            pass
        return

    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            held = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed the file while this process waited: lock the new one
    try:
        yield
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
