"""Weights by tag: the cache, downloads, and converting upstream releases locally.

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
afterwards). A host name that does not resolve (no network) is not retried: the
error says at once which file to copy where. ``ZOO_OFFLINE=1`` forbids network
access: cached files still work, anything else raises
:class:`~zoo.errors.OfflineError`.
"""

from __future__ import annotations

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

from .convert.canonical import CONVERTER_VERSION, sha256_file
from .errors import ChecksumError, DownloadError, OfflineError
from .manifest import Manifest, RemoteFile, WeightsEntry, converted_file_name, load_manifest

ENV_HOME = "ZOO_HOME"
ENV_OFFLINE = "ZOO_OFFLINE"
ENV_WEIGHTS_URL = "ZOO_WEIGHTS_URL"
ENV_QUIET = "ZOO_QUIET"

# (connect, read) seconds: a read timeout is the longest silence between two packets.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
_CHUNK = 1 << 20
# Small enough that a dropped connection loses little of what already arrived.
_STREAM_CHUNK = 1 << 16
# An HTML page larger than this is not a Google Drive interstitial.
_MAX_HTML_BYTES = 1 << 20

log = logging.getLogger(__name__)


class UnverifiedFileWarning(UserWarning):
    """A file was downloaded whose upstream publishes no checksum: its bytes are unverified."""


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
        verify_file(target, upstream, source=str(target))
        return target
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
    from .registry import get_model_entry

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
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    if entry.converted.sha256 and digest != entry.converted.sha256:
        warnings.warn(
            f"{target}: converted locally to sha256 {digest}, but the published {entry.converted.file} has "
            f"{entry.converted.sha256}: the upstream bytes or the converter version differ",
            stacklevel=2,
        )
    return target


def find_cached_converted(entry: WeightsEntry, weights_dir: str | os.PathLike) -> Path | None:
    """A usable converted file of ``entry`` in ``weights_dir``, or None.

    The published file (by name and size) if present; else the newest
    ``<model>-<tag>-*.safetensors`` that the current converter wrote from the
    manifest's upstream bytes (read from the file's safetensors metadata).
    """
    weights_dir = Path(weights_dir)
    published = entry.converted
    if published.file and (path := weights_dir / published.file).is_file() and path.stat().st_size == published.size:
        return path
    candidates = sorted(weights_dir.glob(f"{entry.model}-{entry.tag}-*.safetensors"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        metadata = _safetensors_metadata(path)
        if metadata.get("model") != entry.model or metadata.get("converter_version") != CONVERTER_VERSION:
            continue
        if entry.upstream.sha256 and metadata.get("source_sha256") != entry.upstream.sha256:
            continue
        return path
    return None


def published_urls(entry: WeightsEntry) -> list[str]:
    """Where the converted file is published: ``$ZOO_WEIGHTS_URL/<file>`` first, then the manifest's URLs."""
    if not entry.converted.file:
        return []
    urls = list(entry.converted.urls)
    if base := os.environ.get(ENV_WEIGHTS_URL):
        urls.insert(0, base.rstrip("/") + "/" + entry.converted.file)
    return urls


def download(urls: Sequence[str], dest: str | os.PathLike, size: int | None = None, sha256: str | None = None,
             md5: str | None = None, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
             retries: int = DEFAULT_RETRIES, backoff_s: float = DEFAULT_BACKOFF_S) -> Path:
    """Download ``dest`` from the first of ``urls`` that gives bytes matching ``size``/``sha256``/``md5``.

    The bytes go to ``.<name>.part`` beside ``dest`` (kept between attempts and
    resumed with a ``Range`` request) and are renamed to ``dest`` only once
    verified; a lock file serialises processes fetching the same ``dest``. Each
    URL gets ``retries`` more attempts after a connection error, timeout, 5xx or
    short body, ``backoff_s * 2**n`` seconds apart; a 4xx or an unexpected HTML
    page moves on to the next URL. Google Drive's "can't scan this file for
    viruses" page is confirmed and followed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = RemoteFile(dest.name, tuple(urls), size, sha256, md5)
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
            for url in urls:
                try:
                    _fetch_with_retries(session, url, part, size, timeout, retries, backoff_s)
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
        raise error_type(f"could not download {dest.name}: " + "; ".join(failures))


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


def _fetch_with_retries(session: requests.Session, url: str, part: Path, size: int | None,
                        timeout: float | tuple[float, float], retries: int, backoff_s: float) -> None:
    for attempt in range(retries + 1):
        try:
            _fetch_once(session, url, part, size, timeout)
            return
        except requests.RequestException as error:
            # No DNS answer means no network (or a wrong host): waiting will not help.
            failure = _TransferError(_describe(error), retryable=not _is_name_resolution_failure(error))
        except _TransferError as error:
            failure = error
        if not failure.retryable or attempt == retries:
            raise failure
        delay = backoff_s * 2**attempt
        log.warning("%s: %s; retrying in %.1f s (%d of %d)", url, failure, delay, attempt + 1, retries)
        time.sleep(delay)


def _fetch_once(session: requests.Session, url: str, part: Path, size: int | None,
                timeout: float | tuple[float, float], confirmed: bool = False) -> None:
    """One GET of ``url`` into ``part``, resuming from its current length."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset >= size:
        if offset == size:
            return  # complete from an earlier attempt; verification follows
        part.unlink()
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416:  # the partial file does not fit the remote one: start over
            part.unlink()
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
            _fetch_once(session, next_url, part, size, timeout, confirmed=True)
            return
        resumed = response.status_code == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            part.unlink(missing_ok=True)
            raise _TransferError(f"bad Content-Range {response.headers.get('Content-Range')!r}", retryable=True)
        # A 200 to a Range request means the server ignores ranges: take the whole body.
        length = response.headers.get("Content-Length")
        expected_body = int(length) if length is not None and length.isdigit() else None
        received = 0
        name = part.name.removeprefix(".").removesuffix(".part")
        progress = _Progress(name, total=size or ((offset if resumed else 0) + (expected_body or 0)))
        with open(part, "ab" if resumed else "wb") as f:
            for chunk in response.iter_content(_STREAM_CHUNK):
                f.write(chunk)
                received += len(chunk)
                progress.update((offset if resumed else 0) + received)
        progress.close()
        if expected_body is not None and received != expected_body:
            raise _TransferError(f"connection closed after {received} of {expected_body} bytes", retryable=True)


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


class _Progress:
    """A one-line byte counter on stderr, shown only when stderr is a terminal and ``ZOO_QUIET`` is not set."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.enabled = sys.stderr.isatty() and not _env_true(ENV_QUIET)
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.5:
            self._last = now
            of_total = f" / {self.total / 1e6:.1f}" if self.total else ""
            sys.stderr.write(f"\r{self.name}: {done / 1e6:.1f}{of_total} MB")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
