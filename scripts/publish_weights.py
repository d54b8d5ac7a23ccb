#!/usr/bin/env python3
"""Maintainer tool: convert upstream releases for publishing, record them, verify uploads, write the index.

    python scripts/publish_weights.py --out dist/weights --base-url https://example.org/zoo/weights-v1/
    # upload dist/weights/*.safetensors to that base URL, then:
    python scripts/publish_weights.py --verify
    python scripts/publish_weights.py --index        # regenerate weights/README.md

For each tag (or the ``model.tag`` / ``model`` names given) the upstream file is
fetched and checked (or taken from ``--source model.tag=PATH``), converted to
``<model>-<tag>-<sha8>.safetensors`` in ``--out``, and the record of published
files (``zoo/published.json``, or ``--manifest``) gets that file name, size and
sha256, and the URL ``<base-url>/<file>`` (none without ``--base-url``); for the
package record, ``weights/README.md`` is regenerated too. ``--verify``
downloads every published URL to a temporary folder and checks it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from zoo import hub
from zoo.cli import report_error, run_cli
from zoo.convert.canonical import sha256_file
from zoo.errors import ZooError
from zoo.manifest import INDEX_PATH, Manifest, load_manifest, save_manifest, write_index


def publish(manifest: Manifest, keys: list[str], out: Path, base_url: str | None, sources: dict[str, str]) -> int:
    """Convert each entry into ``out`` and record the converted files."""
    data = json.loads(manifest.path.read_text(encoding="utf-8"))
    for key in keys:
        entry = manifest.entries[key]
        source = sources.get(key) or hub.fetch_upstream(entry.model, entry.tag, manifest=manifest)
        hub.verify_file(source, entry.upstream, source=str(source))
        converted = hub.convert_upstream(entry, source, out)
        data["weights"].setdefault(key, {})["converted"] = {
            "file": converted.name,
            "urls": [base_url.rstrip("/") + "/" + converted.name] if base_url else [],
            "size": converted.stat().st_size,
            "sha256": sha256_file(converted),
        }
        print(f"{key}: {converted}")
    for written in save_manifest(data, manifest.path):
        print(f"updated {written}")
    if base_url:
        print(f"now upload the files in {out} to {base_url}, then run: python scripts/publish_weights.py --verify")
    return 0


def verify(manifest: Manifest, keys: list[str]) -> int:
    """Download every published URL of ``keys`` and check its size and sha256; 1 if any fails."""
    failed = 0
    with tempfile.TemporaryDirectory() as scratch:
        for key in keys:
            converted = manifest.entries[key].converted
            if not converted.urls:
                print(f"{key}: not published")
            for number, url in enumerate(converted.urls):
                try:
                    hub.download([url], Path(scratch) / f"{number}-{converted.file}", size=converted.size,
                                 sha256=converted.sha256)
                    print(f"{key}: ok {url}")
                except ZooError as error:
                    report_error(f"{key}: FAILED {error}")
                    failed += 1
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", help="model.tag or model (default: every tag)")
    parser.add_argument("--out", help="folder for the converted files to upload")
    parser.add_argument("--base-url", help="where the files will be uploaded; each file's URL is <base-url>/<file>")
    parser.add_argument("--source", action="append", default=[], metavar="MODEL.TAG=PATH",
                        help="use this upstream file instead of downloading it (checked all the same)")
    parser.add_argument("--manifest", help="record to update (default: $ZOO_MANIFEST or zoo/published.json)")
    parser.add_argument("--verify", action="store_true", help="download and check every published file")
    parser.add_argument("--index", nargs="?", const=str(INDEX_PATH), metavar="PATH",
                        help=f"write the index of all tags (default {INDEX_PATH}) from the package's registry and record")
    args = parser.parse_args(argv)
    if args.index:
        print(f"wrote {write_index(args.index)}")
        return 0
    sources: dict[str, str] = {}
    for item in args.source:
        key, separator, path = item.partition("=")
        if not separator:
            parser.error(f"--source {item!r}: expected MODEL.TAG=PATH")
        sources[key] = path
    manifest = load_manifest(args.manifest)
    keys = manifest.select(args.weights)
    if args.verify:
        return verify(manifest, keys)
    if not args.out:
        parser.error("--out is required unless --verify or --index")
    return publish(manifest, keys, Path(args.out), args.base_url, sources)


if __name__ == "__main__":
    run_cli(main)
