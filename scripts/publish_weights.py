#!/usr/bin/env python3
"""Maintainer tool: convert upstream releases for publishing, record them in the manifest, verify uploads.

    python scripts/publish_weights.py --out dist/weights --base-url https://example.org/zoo/weights-v1/
    # upload dist/weights/*.safetensors to that base URL, then:
    python scripts/publish_weights.py --verify

For each entry (or the ``model.tag`` / ``model`` names given) the upstream file is
fetched and checked (or taken from ``--source model.tag=PATH``), converted to
``<model>-<tag>-<sha8>.safetensors`` in ``--out``, and the manifest's
``converted`` record gets that file name, size and sha256, and the URL
``<base-url>/<file>`` (none without ``--base-url``). The package manifest is
written together with its ``weights/manifest.json`` copy. ``--verify``
downloads every published URL to a temporary folder and checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from zoo import hub
from zoo.convert.canonical import sha256_file
from zoo.errors import ZooError
from zoo.manifest import Manifest, load_manifest, save_manifest


def publish(manifest: Manifest, keys: list[str], out: Path, base_url: str | None, sources: dict[str, str]) -> int:
    """Convert each entry into ``out`` and record the converted files in the manifest."""
    data = json.loads(manifest.path.read_text(encoding="utf-8"))
    for key in keys:
        entry = manifest.entries[key]
        source = sources.get(key) or hub.fetch_upstream(entry.model, entry.tag, manifest=manifest)
        hub.verify_file(source, entry.upstream, source=str(source))
        converted = hub.convert_upstream(entry, source, out)
        data["weights"][key]["converted"] = {
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
                    print(f"{key}: FAILED {error}", file=sys.stderr)
                    failed += 1
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", help="model.tag or model (default: every entry)")
    parser.add_argument("--out", help="folder for the converted files to upload")
    parser.add_argument("--base-url", help="where the files will be uploaded; each file's URL is <base-url>/<file>")
    parser.add_argument("--source", action="append", default=[], metavar="MODEL.TAG=PATH",
                        help="use this upstream file instead of downloading it (checked all the same)")
    parser.add_argument("--manifest", help="manifest to update (default: $ZOO_MANIFEST or the package's)")
    parser.add_argument("--verify", action="store_true", help="download and check every published file")
    args = parser.parse_args(argv)
    sources: dict[str, str] = {}
    for item in args.source:
        key, separator, path = item.partition("=")
        if not separator:
            parser.error(f"--source {item!r}: expected MODEL.TAG=PATH")
        sources[key] = path
    try:
        manifest = load_manifest(args.manifest)
        keys = manifest.select(args.weights)
        if args.verify:
            return verify(manifest, keys)
        if not args.out:
            parser.error("--out is required unless --verify")
        return publish(manifest, keys, Path(args.out), args.base_url, sources)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
