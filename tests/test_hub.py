"""zoo.hub against a local HTTP server whose every response the test controls.

Each test installs handlers for the paths it serves, then asserts on what
reached the disk (final file, no partial or temporary files left) and on the
requests the server saw (count, Range headers, query).
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import multiprocessing
import os
import shutil
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import torch

import zoo
from zoo import hub
from zoo.errors import ChecksumError, DownloadError, ManifestError, OfflineError, ZooError
from zoo.manifest import converted_file_name
from zoo.weights import read_state_dict

DATA = bytes(range(256)) * 4096  # 1 MiB of stand-in bytes
SHA = hashlib.sha256(DATA).hexdigest()
FAST = dict(retries=2, backoff_s=0.0, timeout=5.0)

Handler = Callable[[BaseHTTPRequestHandler], None]


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 that records requests and dispatches paths to handlers."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        routes, requests = self.routes, self.requests

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append((self.path, dict(self.headers)))
                route = routes.get(urlsplit(self.path).path)
                if route is None:
                    self.send_error(404)
                else:
                    route(self)

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.handle_error = lambda request, address: None  # clients that hang up are the point
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def hits(self, path: str) -> list[dict[str, str]]:
        """Headers of each request to ``path`` (query ignored)."""
        return [headers for p, headers in self.requests if urlsplit(p).path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    local = LocalServer()
    yield local
    local.close()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty ZOO_HOME, online, with no mirror override."""
    cache = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(cache))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.delenv("ZOO_WEIGHTS_URL", raising=False)
    return cache


def send_bytes(handler: BaseHTTPRequestHandler, data: bytes, honor_range: bool = True,
               content_type: str = "application/octet-stream") -> None:
    """Answer with ``data``, or its tail with 206 when the request has a Range and ``honor_range``."""
    start = 0
    requested = handler.headers.get("Range")
    if requested and honor_range:
        start = int(requested.removeprefix("bytes=").split("-")[0])
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    else:
        handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data) - start))
    handler.end_headers()
    handler.wfile.write(data[start:])


def serve(data: bytes, honor_range: bool = True) -> Handler:
    return lambda handler: send_bytes(handler, data, honor_range)


def first_then(first: Handler, then: Handler) -> Handler:
    """A handler that answers the first request with ``first`` and every later one with ``then``."""
    calls = []

    def route(handler: BaseHTTPRequestHandler) -> None:
        calls.append(1)
        (first if len(calls) == 1 else then)(handler)

    return route


def drop_halfway(handler: BaseHTTPRequestHandler) -> None:
    """Promise all of DATA, send half, hang up."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(DATA)))
    handler.end_headers()
    handler.wfile.write(DATA[: len(DATA) // 2])
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(2)


def status(code: int) -> Handler:
    return lambda handler: handler.send_error(code)


def send_html(handler: BaseHTTPRequestHandler, body: str, cookie: str | None = None) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    if cookie:
        handler.send_header("Set-Cookie", cookie)
    encoded = body.encode()
    handler.send_header("Content-Length", str(len(encoded)))
    handler.end_headers()
    handler.wfile.write(encoded)


def leftovers(folder: Path) -> list[str]:
    """Partial, temporary or lock files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".tmp", ".lock")) or
                  p.name.startswith("."))


# --- download(): transfer, resume, retry, verification -------------------------------------------


def test_download_writes_verified_file_and_nothing_else(server, tmp_path):
    server.routes["/f.bin"] = serve(DATA)
    dest = hub.download([server.url("/f.bin")], tmp_path / "f.bin", size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert len(server.hits("/f.bin")) == 1
    assert leftovers(tmp_path) == []


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    server.routes["/f.bin"] = first_then(drop_halfway, serve(DATA))
    dest = hub.download([server.url("/f.bin")], tmp_path / "f.bin", size=len(DATA), sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    hits = server.hits("/f.bin")
    assert len(hits) == 2
    assert "Range" not in hits[0]
    assert hits[1]["Range"] == f"bytes={len(DATA) // 2}-"
    assert leftovers(tmp_path) == []


def test_server_ignoring_range_gets_the_whole_file_again(server, tmp_path):
    server.routes["/f.bin"] = first_then(drop_halfway, serve(DATA, honor_range=False))
    dest = hub.download([server.url("/f.bin")], tmp_path / "f.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA  # not the first half twice
    assert server.hits("/f.bin")[1]["Range"] == f"bytes={len(DATA) // 2}-"


def test_server_error_is_retried(server, tmp_path):
    server.routes["/f.bin"] = first_then(status(500), serve(DATA))
    dest = hub.download([server.url("/f.bin")], tmp_path / "f.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert len(server.hits("/f.bin")) == 2


def test_404_is_not_retried_and_the_next_url_is_tried(server, tmp_path):
    server.routes["/gone.bin"] = status(404)
    server.routes["/f.bin"] = serve(DATA)
    dest = hub.download([server.url("/gone.bin"), server.url("/f.bin")], tmp_path / "f.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert len(server.hits("/gone.bin")) == 1


def test_all_urls_failing_names_each_url_and_writes_nothing(server, tmp_path):
    server.routes["/a"] = status(404)
    server.routes["/b"] = status(503)
    with pytest.raises(DownloadError) as error:
        hub.download([server.url("/a"), server.url("/b")], tmp_path / "f.bin", sha256=SHA, **FAST)
    assert server.url("/a") in str(error.value) and "HTTP 404" in str(error.value)
    assert server.url("/b") in str(error.value) and "HTTP 503" in str(error.value)
    assert len(server.hits("/b")) == 3  # 1 + 2 retries
    assert not (tmp_path / "f.bin").exists()
    assert leftovers(tmp_path) == []


def test_slow_server_times_out(server, tmp_path):
    def slow(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(5.0)
        send_bytes(handler, DATA)

    server.routes["/slow"] = slow
    started = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        hub.download([server.url("/slow")], tmp_path / "f.bin", timeout=0.2, retries=1, backoff_s=0.0)
    assert time.monotonic() - started < 4.0  # gave up long before the server answered
    assert len(server.hits("/slow")) == 2
    assert not (tmp_path / "f.bin").exists()


def test_redirect_is_followed(server, tmp_path):
    def moved(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", "/f.bin")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    server.routes["/old"] = moved
    server.routes["/f.bin"] = serve(DATA)
    dest = hub.download([server.url("/old")], tmp_path / "f.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA


def test_wrong_bytes_raise_checksum_error_and_leave_nothing(server, tmp_path):
    server.routes["/bad"] = serve(DATA[::-1])
    with pytest.raises(ChecksumError) as error:
        hub.download([server.url("/bad")], tmp_path / "f.bin", sha256=SHA, **FAST)
    assert server.url("/bad") in str(error.value)
    assert SHA in str(error.value) and hashlib.sha256(DATA[::-1]).hexdigest() in str(error.value)
    assert not (tmp_path / "f.bin").exists()
    assert leftovers(tmp_path) == []


def test_wrong_size_or_md5_is_caught_and_a_good_mirror_wins(server, tmp_path):
    server.routes["/short"] = serve(DATA[:-1])
    server.routes["/f.bin"] = serve(DATA)
    md5 = hashlib.md5(DATA).hexdigest()
    dest = hub.download([server.url("/short"), server.url("/f.bin")], tmp_path / "f.bin", size=len(DATA), md5=md5,
                        **FAST)
    assert dest.read_bytes() == DATA
    with pytest.raises(ChecksumError, match="md5"):
        hub.download([server.url("/short")], tmp_path / "g.bin", md5=md5, **FAST)


# --- Google Drive's virus-scan interstitial --------------------------------------------------------


def test_google_drive_form_interstitial(server, tmp_path):
    form_page = f"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
    <p>Google Drive can't scan this file for viruses.</p>
    <form id="download-form" action="{server.url('/download')}" method="get">
      <input type="submit" id="uc-download-link" value="Download anyway"/>
      <input type="hidden" name="id" value="FILEID"><input type="hidden" name="export" value="download">
      <input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="1234-abcd">
    </form></body></html>"""
    server.routes["/uc"] = lambda handler: send_html(handler, form_page)
    server.routes["/download"] = serve(DATA)
    dest = hub.download([server.url("/uc?export=download&id=FILEID")], tmp_path / "f.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    confirmed = [p for p, _ in server.requests if p.startswith("/download")]
    assert len(confirmed) == 1
    assert parse_qs(urlsplit(confirmed[0]).query) == {
        "id": ["FILEID"], "export": ["download"], "confirm": ["t"], "uuid": ["1234-abcd"]}


def test_google_drive_cookie_interstitial(server, tmp_path):
    def drive(handler: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        if query.get("confirm") == ["TOKEN"] and "download_warning_1_FILEID=TOKEN" in handler.headers.get("Cookie", ""):
            send_bytes(handler, DATA)
        else:
            send_html(handler, "<html><body>Google Drive can't scan this file for viruses.</body></html>",
                      cookie="download_warning_1_FILEID=TOKEN; Path=/")

    server.routes["/uc"] = drive
    dest = hub.download([server.url("/uc?export=download&id=FILEID")], tmp_path / "f.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert len(server.hits("/uc")) == 2


def test_html_page_without_confirmation_is_an_error(server, tmp_path):
    page = "<html><body>Too many users have viewed or downloaded this file recently.</body></html>"
    server.routes["/uc"] = lambda handler: send_html(handler, page)
    with pytest.raises(DownloadError, match="HTML page instead of the file"):
        hub.download([server.url("/uc?id=X")], tmp_path / "f.bin", **FAST)
    assert len(server.hits("/uc")) == 1
    assert not (tmp_path / "f.bin").exists()
    assert leftovers(tmp_path) == []


# --- concurrency and offline mode -----------------------------------------------------------------


def test_two_processes_downloading_the_same_file(server, tmp_path):
    big = DATA * 4

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(big)))
        handler.end_headers()
        for start in range(0, len(big), len(big) // 8):
            handler.wfile.write(big[start:start + len(big) // 8])
            time.sleep(0.05)

    server.routes["/big.bin"] = trickle
    dest = tmp_path / "big.bin"
    args = ([server.url("/big.bin")], str(dest), len(big), hashlib.sha256(big).hexdigest())
    # fork: a spawned child would spend seconds importing torch before its first request.
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    workers = [context.Process(target=hub.download, args=args) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        for worker in workers:
            worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert dest.read_bytes() == big
    assert len(server.hits("/big.bin")) == 1  # the second process found the finished file
    assert leftovers(tmp_path) == []


def test_offline_download_raises_without_a_request(server, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    server.routes["/f.bin"] = serve(DATA)
    with pytest.raises(OfflineError, match="ZOO_OFFLINE"):
        hub.download([server.url("/f.bin")], tmp_path / "f.bin", **FAST)
    assert server.requests == []
    assert not (tmp_path / "f.bin").exists()


# --- no network: fail at once, and say what to do ----------------------------------------------

# `.invalid` never resolves (RFC 2606): what every host looks like without network.
UNRESOLVABLE = "http://nonexistent.invalid/"


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_unresolvable_host_is_not_retried(tmp_path, no_proxy, caplog):
    started = time.monotonic()
    with pytest.raises(DownloadError) as error:
        hub.download([UNRESOLVABLE + "f.bin", "https://also.nonexistent.invalid/f.bin"], tmp_path / "f.bin",
                     sha256=SHA, retries=3, backoff_s=5.0, timeout=5.0)
    assert time.monotonic() - started < 4.0  # a single retry would have slept 5 s
    message = str(error.value)
    assert "cannot resolve the host name nonexistent.invalid" in message
    assert "also.nonexistent.invalid" in message and "\n" not in message
    assert "retrying" not in caplog.text
    assert list(tmp_path.iterdir()) == []  # no partial file, no lock file


def test_refused_connection_is_still_retried(tmp_path, caplog):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="ConnectionError"):
        hub.download([f"http://127.0.0.1:{port}/f.bin"], tmp_path / "f.bin", retries=1, backoff_s=0.0, timeout=2.0)
    assert "retrying" in caplog.text
    assert leftovers(tmp_path) == []


def test_weights_tag_without_network_fails_fast_saying_what_to_copy_where(tmp_path, home, no_proxy, monkeypatch):
    real = zoo.get_model_entry("mobilenet_v1").weights_tag("mlperf").upstream
    manifest = write_manifest(tmp_path / "m.json", "mobilenet_v1.mlperf", {
        "file": real.file, "urls": [UNRESOLVABLE + real.file, "https://also.nonexistent.invalid/" + real.file],
        "size": real.size, "sha256": real.sha256})
    monkeypatch.setenv("ZOO_MANIFEST", str(manifest))
    started = time.monotonic()
    with pytest.raises(DownloadError) as error:
        zoo.mobilenet_v1_tf_compat(weights="mlperf")
    assert time.monotonic() - started < 10.0
    message = str(error.value)
    assert str(home / "upstream" / "mobilenet_v1_1.0_224.tgz") in message
    assert "94321559 bytes" in message and "2fadeabb9968ec6833bee903900dda6e61b3947200535874ce2fe42a8493abc0" in message
    assert "ZOO_OFFLINE=1" in message and "nonexistent.invalid" in message
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert [p for p in home.rglob("*") if p.is_file()] == []  # no lock, partial or converted file left


def test_lock_file_is_removed_after_use_and_after_failure(tmp_path):
    lock = tmp_path / ".x.lock"
    with hub._file_lock(lock):
        assert lock.exists()
    assert not lock.exists()
    with pytest.raises(RuntimeError):
        with hub._file_lock(lock):
            raise RuntimeError("inside")
    assert not lock.exists()


def test_lock_excludes_while_holders_remove_the_file(tmp_path):
    # flock locks an open file, so threads with their own handles exclude each other like processes.
    lock = tmp_path / ".x.lock"
    inside: list[int] = []
    overlaps: list[int] = []

    def worker() -> None:
        for _ in range(40):
            with hub._file_lock(lock):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.0005)
                inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert overlaps == []
    assert not lock.exists()


# --- manifest-driven fetching -------------------------------------------------------------------


def write_manifest(path: Path, key: str, upstream: dict, converted: dict | None = None) -> Path:
    """A weights record (ZOO_MANIFEST format) that points ``key`` at the given upstream and converted files."""
    entry = {"upstream": dict(upstream, citation={}),
             "converted": converted or {"file": None, "urls": [], "size": None, "sha256": None}}
    path.write_text(json.dumps({"schema_version": 2, "weights": {key: entry}}))
    return path


def test_unknown_tag_lists_the_known_ones(tmp_path, home):
    with pytest.raises(ManifestError, match="its tags: mlperf"):
        hub.converted_weights("resnet50", "imagenet")


def test_upstream_without_checksum_warns_with_the_sha256_seen(server, tmp_path, home):
    server.routes["/ckpt"] = serve(DATA)
    manifest = write_manifest(tmp_path / "m.json", "flownet2_sd.nvidia",
                              {"file": "ckpt.pth.tar", "urls": [server.url("/ckpt")], "size": None, "sha256": None})
    with pytest.warns(hub.UnverifiedFileWarning, match=SHA):
        path = hub.fetch_upstream("flownet2_sd", "nvidia", manifest=manifest)
    assert path == home / "upstream" / "ckpt.pth.tar"
    assert path.read_bytes() == DATA


def test_corrupt_cached_upstream_file_is_deleted_and_fetched_again(server, tmp_path, home):
    server.routes["/m.tgz"] = serve(DATA)
    manifest = write_manifest(tmp_path / "m.json", "mobilenet_v1.mlperf",
                              {"file": "m.tgz", "urls": [server.url("/m.tgz")], "size": len(DATA), "sha256": SHA})
    cached = home / "upstream" / "m.tgz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(DATA[::-1])  # right size, wrong bytes
    with pytest.warns(hub.CorruptCacheWarning, match=f"sha256 [0-9a-f]{{64}}, expected {SHA}"):
        path = hub.fetch_upstream("mobilenet_v1", "mlperf", manifest=manifest)
    assert path == cached and cached.read_bytes() == DATA
    assert len(server.hits("/m.tgz")) == 1


def test_corrupt_cached_upstream_file_offline_is_kept_and_named(server, tmp_path, home, monkeypatch):
    manifest = write_manifest(tmp_path / "m.json", "mobilenet_v1.mlperf",
                              {"file": "m.tgz", "urls": [server.url("/m.tgz")], "size": len(DATA), "sha256": SHA})
    cached = home / "upstream" / "m.tgz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(DATA[:-1])
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(ChecksumError, match=f"{cached}.*{len(DATA) - 1} bytes, expected {len(DATA)}.*good copy"):
        hub.fetch_upstream("mobilenet_v1", "mlperf", manifest=manifest)
    assert cached.read_bytes() == DATA[:-1]  # the user's only copy is not deleted
    assert server.requests == []


def published(server: LocalServer, data: bytes, model: str, tag: str, path: str | None) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    name = converted_file_name(model, tag, digest)
    if path is not None:
        server.routes[path] = serve(data)
    return {"file": name, "urls": [server.url(path or "/nowhere")], "size": len(data), "sha256": digest}


def test_published_converted_file_is_downloaded_once(server, tmp_path, home, monkeypatch):
    converted = published(server, DATA, "mobilenet_v1", "mlperf", "/w/converted")
    manifest = write_manifest(tmp_path / "m.json", "mobilenet_v1.mlperf",
                              {"file": "m.tgz", "urls": [server.url("/m.tgz")], "size": None, "sha256": SHA}, converted)
    monkeypatch.setenv("ZOO_MANIFEST", str(manifest))
    path = hub.converted_weights("mobilenet_v1", "mlperf")
    assert path == home / "weights" / converted["file"] and path.read_bytes() == DATA
    assert hub.converted_weights("mobilenet_v1", "mlperf") == path
    assert len(server.requests) == 1  # no upstream request, no second download
    assert leftovers(home / "weights") == []


def test_zoo_weights_url_mirror_is_tried_first(server, tmp_path, home, monkeypatch):
    converted = published(server, DATA, "mobilenet_v1", "mlperf", None)
    server.routes["/mirror/" + converted["file"]] = serve(DATA)
    manifest = write_manifest(tmp_path / "m.json", "mobilenet_v1.mlperf",
                              {"file": "m.tgz", "urls": [server.url("/m.tgz")], "size": None, "sha256": SHA}, converted)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.url("/mirror/"))
    path = hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest)
    assert path.read_bytes() == DATA
    assert [p for p, _ in server.requests] == ["/mirror/" + converted["file"]]


def test_offline_without_anything_cached_names_what_to_provide(server, tmp_path, home, monkeypatch):
    manifest = write_manifest(tmp_path / "m.json", "resnet50.mlperf",
                              {"file": "resnet50_v1.pb", "urls": [server.url("/r.pb")], "size": None, "md5": "0" * 32})
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as error:
        hub.converted_weights("resnet50", "mlperf", manifest=manifest)
    assert "resnet50_v1.pb" in str(error.value) and str(home / "upstream") in str(error.value)
    assert server.requests == []
    assert not (home / "upstream").exists()


# --- end to end with the stand-in ResNet-50 frozen graph ---------------------------------------------


@pytest.fixture(scope="module")
def resnet_pb(tmp_path_factory, tf) -> bytes:
    from zoo.standins.resnet50 import write_frozen_pb

    return write_frozen_pb(tmp_path_factory.mktemp("upstream") / "resnet50_v1.pb", seed=3).read_bytes()


def test_resnet50_mlperf_end_to_end(server, tmp_path, home, monkeypatch, resnet_pb):
    server.routes["/resnet50_v1.pb"] = serve(resnet_pb)
    # As the real entry: md5 only, as MLCommons records it.
    manifest = write_manifest(tmp_path / "m.json", "resnet50.mlperf", {
        "file": "resnet50_v1.pb", "urls": [server.url("/resnet50_v1.pb")], "size": len(resnet_pb),
        "sha256": None, "md5": hashlib.md5(resnet_pb).hexdigest()})
    monkeypatch.setenv("ZOO_MANIFEST", str(manifest))

    model = zoo.resnet50_tf_compat(weights="mlperf")

    assert (home / "upstream" / "resnet50_v1.pb").read_bytes() == resnet_pb
    (converted,) = (home / "weights").glob("*.safetensors")
    digest = hashlib.sha256(converted.read_bytes()).hexdigest()
    assert converted.name == converted_file_name("resnet50", "mlperf", digest)
    state = read_state_dict(converted)
    for name, tensor in model.state_dict().items():
        if name in state:
            assert torch.equal(tensor, state[name]), name
    assert leftovers(home / "weights") == [] and leftovers(home / "upstream") == []
    assert len(server.requests) == 1

    zoo.resnet50_tf_compat(weights="mlperf")
    assert len(server.requests) == 1  # cached: no request

    # Offline, with only the upstream file cached: converts again, locally, to the same bytes.
    shutil.rmtree(home / "weights")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    again = hub.converted_weights("resnet50", "mlperf")
    assert again.name == converted.name and hashlib.sha256(again.read_bytes()).hexdigest() == digest
    assert len(server.requests) == 1


def test_unreachable_published_file_falls_back_to_upstream(server, tmp_path, home, resnet_pb):
    server.routes["/resnet50_v1.pb"] = serve(resnet_pb)
    server.routes["/w/missing"] = status(404)
    upstream = {"file": "resnet50_v1.pb", "urls": [server.url("/resnet50_v1.pb")], "size": len(resnet_pb),
                "sha256": hashlib.sha256(resnet_pb).hexdigest()}
    # What the maintainer would publish: this stand-in converted (conversion is deterministic).
    entry = hub.load_manifest(write_manifest(tmp_path / "m.json", "resnet50.mlperf", upstream)).entry("resnet50", "mlperf")
    source = tmp_path / "src" / "resnet50_v1.pb"
    source.parent.mkdir()
    source.write_bytes(resnet_pb)
    reference = hub.convert_upstream(entry, source, tmp_path / "published")
    converted = {"file": reference.name, "urls": [server.url("/w/missing")], "size": reference.stat().st_size,
                 "sha256": hashlib.sha256(reference.read_bytes()).hexdigest()}
    manifest = write_manifest(tmp_path / "m.json", "resnet50.mlperf", upstream, converted)

    with pytest.warns(UserWarning, match="falling back to converting the upstream release"):
        path = hub.converted_weights("resnet50", "mlperf", manifest=manifest)

    assert path == home / "weights" / reference.name
    assert path.read_bytes() == reference.read_bytes()
    assert len(server.hits("/w/missing")) == 1 and len(server.hits("/resnet50_v1.pb")) == 1


# --- the maintainer scripts ------------------------------------------------------------------------


def load_script(name: str):
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"zoo_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fetch_upstream_record_pins_the_sha256_seen(server, tmp_path, home, capsys):
    server.routes["/ckpt"] = serve(DATA)
    manifest = write_manifest(tmp_path / "m.json", "flownet2_sd.nvidia",
                              {"file": "ckpt.pth.tar", "urls": [server.url("/ckpt")], "size": None, "sha256": None})
    with pytest.warns(hub.UnverifiedFileWarning):
        assert load_script("fetch_upstream").main(["flownet2_sd", "--record", "--manifest", str(manifest)]) == 0
    upstream = json.loads(manifest.read_text())["weights"]["flownet2_sd.nvidia"]["upstream"]
    assert (upstream["sha256"], upstream["size"]) == (SHA, len(DATA))
    assert "fetch_upstream.py --record" in upstream["citation"]["sha256"]
    assert SHA in capsys.readouterr().out
    # Pinned: a changed upstream file is now refused.
    (home / "upstream" / "ckpt.pth.tar").unlink()
    server.routes["/ckpt"] = serve(DATA[::-1])
    with pytest.raises(ChecksumError):
        hub.fetch_upstream("flownet2_sd", "nvidia", manifest=manifest)


def test_publish_weights_records_verifies_and_serves(server, tmp_path, home, resnet_pb, monkeypatch):
    source = tmp_path / "resnet50_v1.pb"
    source.write_bytes(resnet_pb)
    manifest = write_manifest(tmp_path / "m.json", "resnet50.mlperf", {
        "file": "resnet50_v1.pb", "urls": [server.url("/nowhere")], "size": len(resnet_pb),
        "md5": hashlib.md5(resnet_pb).hexdigest()})
    script = load_script("publish_weights")
    out = tmp_path / "dist"
    assert script.main(["resnet50.mlperf", "--out", str(out), "--base-url", server.url("/w/"),
                        "--source", f"resnet50.mlperf={source}", "--manifest", str(manifest)]) == 0

    (published_file,) = out.glob("*.safetensors")
    converted = json.loads(manifest.read_text())["weights"]["resnet50.mlperf"]["converted"]
    digest = hashlib.sha256(published_file.read_bytes()).hexdigest()
    assert converted == {"file": converted_file_name("resnet50", "mlperf", digest),
                         "urls": [server.url("/w/" + published_file.name)],
                         "size": published_file.stat().st_size, "sha256": digest}
    assert server.requests == []

    assert script.main(["--verify", "--manifest", str(manifest)]) == 1  # not uploaded yet
    server.routes["/w/" + published_file.name] = serve(published_file.read_bytes())
    assert script.main(["--verify", "--manifest", str(manifest)]) == 0

    monkeypatch.setenv("ZOO_MANIFEST", str(manifest))
    model = zoo.resnet50_tf_compat(weights="mlperf")
    assert (home / "weights" / published_file.name).read_bytes() == published_file.read_bytes()
    assert torch.equal(model.fc.weight, read_state_dict(published_file)["fc.weight"])
    assert not server.hits("/nowhere")


def test_cache_location_and_offline_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    assert hub.cache_dir() == tmp_path / "home"
    monkeypatch.delenv("ZOO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert hub.cache_dir() == Path.home() / ".cache" / "zoo"
    for value, offline in (("1", True), ("true", True), ("ON", True), ("0", False), ("", False)):
        monkeypatch.setenv("ZOO_OFFLINE", value)
        assert hub.is_offline() is offline, value


# --- every download ends; nothing unverified is trusted -----------------------------------------


def drip(data: bytes, interval_s: float, content_length: bool = True) -> Handler:
    """Send ``data`` one byte every ``interval_s`` (bounded: stops when the client hangs up or data ends)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        if content_length:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for i in range(len(data)):
            handler.wfile.write(data[i:i + 1])
            time.sleep(interval_s)

    return route


def test_slow_drip_ends_at_the_deadline(server, tmp_path, monkeypatch):
    # 1 byte/s: each byte restarts a read timeout, so only a total deadline ends this.
    server.routes["/drip"] = drip(DATA[:20], 1.0)
    monkeypatch.setenv("ZOO_DOWNLOAD_ALLOWANCE_S", "2")
    started = time.monotonic()
    with pytest.raises(DownloadError, match="too slow") as error:
        hub.download([server.url("/drip")], tmp_path / "f.bin", sha256=SHA, retries=3, backoff_s=0.0, timeout=5.0)
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 5.0, elapsed
    assert "ZOO_MIN_BYTES_PER_S" in str(error.value)
    assert len(server.hits("/drip")) == 1  # a deadline is not retried
    assert not (tmp_path / "f.bin").exists()


def test_deadline_grows_with_the_size_at_the_minimum_throughput(server, tmp_path, monkeypatch):
    # 20 bytes at 10 bytes/s: 2 s on top of the allowance; a 5 bytes/s drip misses it.
    server.routes["/drip"] = drip(DATA[:20], 0.2)
    monkeypatch.setenv("ZOO_DOWNLOAD_ALLOWANCE_S", "0.5")
    monkeypatch.setenv("ZOO_MIN_BYTES_PER_S", "10")
    started = time.monotonic()
    with pytest.raises(DownloadError, match="too slow"):
        hub.download([server.url("/drip")], tmp_path / "f.bin", size=20, sha256=SHA, backoff_s=0.0, timeout=5.0)
    assert 2.3 < time.monotonic() - started < 4.0


def test_bad_throughput_setting_is_a_zoo_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_MIN_BYTES_PER_S", "fast")
    with pytest.raises(ZooError, match="ZOO_MIN_BYTES_PER_S='fast'"):
        hub.download(["http://127.0.0.1:9/f.bin"], tmp_path / "f.bin")


def test_stalled_server_times_out_per_stall_setting(server, tmp_path, monkeypatch):
    def stall(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(DATA)))
        handler.end_headers()
        handler.wfile.write(DATA[:1000])
        time.sleep(5.0)  # bounded: then the handler ends

    server.routes["/stall"] = stall
    monkeypatch.setenv("ZOO_STALL_TIMEOUT_S", "0.3")
    started = time.monotonic()
    with pytest.raises(DownloadError, match="timed out: no byte for 0.3 s"):
        hub.download([server.url("/stall")], tmp_path / "f.bin", sha256=SHA, retries=1, backoff_s=0.0)
    assert time.monotonic() - started < 3.0
    assert len(server.hits("/stall")) == 2  # a stall is transient: retried


def test_redirect_loop_is_not_retried(server, tmp_path):
    def loop(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", "/loop")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    server.routes["/loop"] = loop
    server.routes["/f.bin"] = serve(DATA)
    dest = hub.download([server.url("/loop"), server.url("/f.bin")], tmp_path / "f.bin", sha256=SHA, retries=3,
                        backoff_s=0.0, timeout=5.0)
    assert dest.read_bytes() == DATA  # moved on to the next URL
    assert len(server.hits("/loop")) == hub.MAX_REDIRECTS + 1  # one attempt: no retries of the loop
    with pytest.raises(DownloadError, match="redirect loop"):
        hub.download([server.url("/loop")], tmp_path / "g.bin", sha256=SHA, retries=3, backoff_s=0.0, timeout=5.0)
    assert len(server.hits("/loop")) == 2 * (hub.MAX_REDIRECTS + 1)


def test_checksumless_download_cut_short_stays_partial_and_resumes(server, tmp_path):
    server.routes["/f.bin"] = drop_halfway
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as error:
        hub.download([server.url("/f.bin")], dest, retries=1, backoff_s=0.0, timeout=5.0)
    part = tmp_path / ".f.bin.part"
    assert not dest.exists() and part.stat().st_size == len(DATA) // 2
    assert str(part) in str(error.value)
    server.routes["/f.bin"] = serve(DATA)
    assert hub.download([server.url("/f.bin")], dest, **FAST).read_bytes() == DATA
    assert server.hits("/f.bin")[-1]["Range"] == f"bytes={len(DATA) // 2}-"
    assert leftovers(tmp_path) == []


def test_checksumless_upstream_without_content_length_is_never_trusted(server, tmp_path, home, monkeypatch):
    # FlowNet2-SD's case: no published checksum. A body with no Content-Length cut halfway looks complete.
    def cut(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()
        handler.wfile.write(DATA[: len(DATA) // 2])
        handler.close_connection = True

    server.routes["/ckpt"] = cut
    monkeypatch.setattr(hub, "DEFAULT_BACKOFF_S", 0.0)
    manifest = write_manifest(tmp_path / "m.json", "flownet2_sd.nvidia",
                              {"file": "ckpt.pth.tar", "urls": [server.url("/ckpt")], "size": None, "sha256": None})
    target = home / "upstream" / "ckpt.pth.tar"
    for _ in range(2):  # a later call does not trust what the first left behind
        with pytest.raises(DownloadError, match="no Content-Length"):
            hub.fetch_upstream("flownet2_sd", "nvidia", manifest=manifest)
        assert not target.exists()
        assert (home / "upstream" / ".ckpt.pth.tar.part").stat().st_size == len(DATA) // 2
    # A server that says how long the file is: resumed, and accepted once whole.
    server.routes["/ckpt"] = serve(DATA)
    with pytest.warns(hub.UnverifiedFileWarning):
        path = hub.fetch_upstream("flownet2_sd", "nvidia", manifest=manifest)
    assert path == target and path.read_bytes() == DATA
    assert server.hits("/ckpt")[-1]["Range"] == f"bytes={len(DATA) // 2}-"
    assert leftovers(home / "upstream") == []


def published_manifest(server: LocalServer, tmp_path: Path) -> tuple[Path, dict]:
    converted = published(server, DATA, "mobilenet_v1", "mlperf", "/w/converted")
    manifest = write_manifest(tmp_path / "m.json", "mobilenet_v1.mlperf",
                              {"file": "m.tgz", "urls": [server.url("/m.tgz")], "size": None, "sha256": SHA}, converted)
    return manifest, converted


def test_cached_converted_file_with_flipped_bytes_is_refetched(server, tmp_path, home, monkeypatch):
    manifest, converted = published_manifest(server, tmp_path)
    path = hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest)
    assert path.read_bytes() == DATA and len(server.requests) == 1
    # Stamp it as verified long after its mtime, as a cache hit a day later would find it.
    old = time.time_ns() - 86_400 * 10**9
    os.utime(path, ns=(old, old))
    assert hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest) == path  # rehashed: mtime moved
    with monkeypatch.context() as patched:
        patched.setattr(hub, "sha256_file", lambda p: pytest.fail(f"rehashed {p}"))
        assert hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest) == path  # the stamp holds
    assert len(server.requests) == 1

    flipped = bytearray(DATA)
    flipped[12345] ^= 0xFF
    path.write_bytes(bytes(flipped))  # same size
    with pytest.warns(hub.CorruptCacheWarning, match="sha256"):
        again = hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest)
    assert again == path and path.read_bytes() == DATA
    assert len(server.hits("/w/converted")) == 2


def test_truncated_cached_published_file_is_refetched(server, tmp_path, home):
    manifest, converted = published_manifest(server, tmp_path)
    cached = home / "weights" / converted["file"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(DATA[:-100])
    with pytest.warns(hub.CorruptCacheWarning, match=f"{len(DATA) - 100} bytes, expected {len(DATA)}"):
        path = hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest)
    assert path == cached and path.read_bytes() == DATA
    assert len(server.hits("/w/converted")) == 1
    assert leftovers(home / "weights") == []


def test_corrupt_cached_file_offline_is_deleted_and_offline_error_raised(server, tmp_path, home, monkeypatch):
    manifest, converted = published_manifest(server, tmp_path)
    cached = home / "weights" / converted["file"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(DATA[::-1])  # right size, wrong bytes
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.warns(hub.CorruptCacheWarning), pytest.raises(OfflineError):
        hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest)
    assert not cached.exists()
    assert server.requests == []


def test_disk_full_names_the_path_and_leaves_no_partial_file(server, tmp_path, monkeypatch):
    server.routes["/f.bin"] = serve(DATA)
    writes = []

    def full_disk(f, chunk: bytes) -> None:
        writes.append(len(chunk))
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        f.write(chunk)

    monkeypatch.setattr(hub, "_write_chunk", full_disk)
    dest = tmp_path / "f.bin"
    with pytest.raises(ZooError) as error:
        hub.download([server.url("/f.bin")], dest, sha256=SHA, **FAST)
    assert isinstance(error.value, hub.DiskFullError) and error.value.errno == errno.ENOSPC
    assert str(dest) in str(error.value) and "no space left" in str(error.value)
    assert len(server.hits("/f.bin")) == 1  # not retried
    assert not dest.exists() and leftovers(tmp_path) == []


def test_rewrite_within_the_same_clock_tick_as_the_stamp_is_still_caught(server, tmp_path, home):
    # Coarse file-system clocks can give a rewrite right after stamping the same mtime: such a stamp is not trusted.
    manifest, converted = published_manifest(server, tmp_path)
    path = hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest)
    mtime_ns = path.stat().st_mtime_ns
    path.write_bytes(DATA[::-1])  # same size
    os.utime(path, ns=(mtime_ns, mtime_ns))  # and, as on a coarse clock, the same mtime
    with pytest.warns(hub.CorruptCacheWarning, match="sha256"):
        assert hub.converted_weights("mobilenet_v1", "mlperf", manifest=manifest).read_bytes() == DATA
    assert len(server.hits("/w/converted")) == 2


def test_disk_full_while_converting_names_the_folder_and_leaves_nothing(tmp_path, monkeypatch):
    def convert(source, out) -> None:
        Path(out).write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    class Entry:
        def load(self, what):
            assert what == "converter"
            return convert

    manifest = write_manifest(tmp_path / "m.json", "resnet50.mlperf", {
        "file": "resnet50_v1.pb", "urls": ["http://127.0.0.1:9/x"], "size": None, "md5": "0" * 32})
    entry = hub.load_manifest(manifest).entry("resnet50", "mlperf")
    monkeypatch.setattr(hub, "get_model_entry", lambda name: Entry())
    out = tmp_path / "weights"
    with pytest.raises(hub.DiskFullError, match=str(out)):
        hub.convert_upstream(entry, tmp_path / "src.pb", out)
    assert list(out.iterdir()) == []
