#!/usr/bin/env python3
"""Download upstream releases named in the weights manifest, verified, into the cache.

    python scripts/fetch_upstream.py                      # every entry
    python scripts/fetch_upstream.py resnet50.mlperf --dest upstream/
    python scripts/fetch_upstream.py flownet2_sd --record # pin the sha256 and size seen

Each file is checked against the checksum the manifest cites. Where upstream
publishes none (FlowNet2-SD), the download warns and prints the sha256 it saw;
``--record`` writes that sha256 and the size into the manifest (and its
``weights/manifest.json`` copy), so later downloads are checked against it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from zoo import hub
from zoo.convert.canonical import sha256_file
from zoo.errors import ZooError
from zoo.manifest import load_manifest, save_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", help="model.tag or model (default: every entry)")
    parser.add_argument("--dest", help="folder to download into (default: $ZOO_HOME/upstream)")
    parser.add_argument("--manifest", default=None, help="manifest to read (default: $ZOO_MANIFEST or the package's)")
    parser.add_argument("--record", action="store_true",
                        help="write the sha256 and size seen into the manifest where it has none")
    args = parser.parse_args(argv)
    try:
        manifest = load_manifest(args.manifest)
        keys = manifest.select(args.weights)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    data = json.loads(manifest.path.read_text(encoding="utf-8"))
    recorded = False
    for key in keys:
        entry = manifest.entries[key]
        try:
            file = hub.fetch_upstream(entry.model, entry.tag, dest_dir=args.dest, manifest=manifest)
        except ZooError as error:
            print(f"error: {key}: {error}", file=sys.stderr)
            return 1
        digest, size = sha256_file(file), file.stat().st_size
        print(f"{key}: {file} ({size} bytes, sha256 {digest})")
        upstream = data["weights"][key]["upstream"]
        if args.record and (upstream.get("sha256") is None or upstream.get("size") is None):
            note = f"observed by scripts/fetch_upstream.py --record on {datetime.date.today().isoformat()}"
            citation = upstream.setdefault("citation", {})
            for field, value in (("sha256", digest), ("size", size)):
                if upstream.get(field) is None:
                    upstream[field] = value
                    citation[field] = f"{note}; not published by upstream"
            recorded = True
    if recorded:
        for written in save_manifest(data, manifest.path):
            print(f"recorded in {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
