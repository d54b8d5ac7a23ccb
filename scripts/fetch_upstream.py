#!/usr/bin/env python3
"""Download the upstream releases of the registry's weights tags, verified, into the cache.

    python scripts/fetch_upstream.py                      # every tag
    python scripts/fetch_upstream.py resnet50.mlperf --dest upstream/
    python scripts/fetch_upstream.py flownet2_sd --record # pin the sha256 and size seen

Each file is checked against the checksum that ``zoo/registry/entries.py`` cites. Where
upstream publishes none (FlowNet2-SD), the download warns and prints the sha256
it saw; ``--record`` pins it: with ``--manifest`` (or ``ZOO_MANIFEST``) naming a
record of your own, the sha256 and size are written into that record's
``upstream`` entry; for the package's own tags it prints the fields to add to
the tag's ``RemoteFile`` in ``zoo/registry/entries.py``, the one place upstream facts live.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json

from zoo import hub
from zoo.cli import run_cli
from zoo.convert.canonical import sha256_file
from zoo.manifest import PUBLISHED_RECORD, load_manifest, save_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", help="model.tag or model (default: every tag)")
    parser.add_argument("--dest", help="folder to download into (default: $ZOO_HOME/upstream)")
    parser.add_argument("--manifest", default=None,
                        help="weights record to read (default: $ZOO_MANIFEST or the package's zoo/published.json)")
    parser.add_argument("--record", action="store_true",
                        help="pin the sha256 and size seen where none is recorded (see above)")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    keys = manifest.select(args.weights)
    own_record = manifest.path.resolve() != PUBLISHED_RECORD.resolve()
    data = json.loads(manifest.path.read_text(encoding="utf-8"))
    recorded = False
    for key in keys:
        entry = manifest.entries[key]
        file = hub.fetch_upstream(entry.model, entry.tag, dest_dir=args.dest, manifest=manifest)
        digest, size = sha256_file(file), file.stat().st_size
        print(f"{key}: {file} ({size} bytes, sha256 {digest})")
        upstream = entry.upstream
        if not args.record or (upstream.sha256 is not None and upstream.size is not None):
            continue
        note = f"observed by scripts/fetch_upstream.py --record on {datetime.date.today().isoformat()}"
        pins = {name: value for name, value in (("sha256", digest), ("size", size)) if getattr(upstream, name) is None}
        if not own_record:
            fields = ", ".join(f"{name}={value!r}" for name, value in pins.items())
            print(f"{key}: to pin it, add {fields} to its RemoteFile in zoo/registry/entries.py, with the citation "
                  f"{{{', '.join(f'{name!r}: {note!r}' for name in pins)}}}")
            continue
        record = data["weights"].setdefault(key, {})
        if "upstream" not in record:
            record["upstream"] = {k: (list(v) if isinstance(v, tuple) else dict(v) if k == "citation" else v)
                                  for k, v in dataclasses.asdict(upstream).items()}
        citation = record["upstream"].setdefault("citation", {})
        for name, value in pins.items():
            record["upstream"][name] = value
            citation[name] = f"{note}; not published by upstream"
        recorded = True
    if recorded:
        for written in save_manifest(data, manifest.path):
            print(f"recorded in {written}")
    return 0


if __name__ == "__main__":
    run_cli(main)
