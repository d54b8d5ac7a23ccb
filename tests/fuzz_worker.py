"""Runs zoo's converters on damaged upstream files under a memory limit (see test_fuzz_formats.py).

    python tests/fuzz_worker.py PLAN.json

PLAN is ``{"formats": {name: {"path", "model"}}, "cases": [{"id", "format", "kind", ...}],
"headroom": bytes, "workdir": folder}``. Each good stand-in is converted once first
(the reference, and the warm-up that loads every library and thread pool); then the
address space is capped at what the process holds plus ``headroom``, so a parser
that allocates what a file merely declares fails with MemoryError. Each case
prints one JSON line: ``outcome`` is "zoo" (a ZooError subclass), "ok" (converted,
same tensor names and shapes as the reference) or anything else (a failure).
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys
import time
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
STARTED = time.perf_counter()


def _convert(model: str, source: Path, out: Path) -> Path:
    from zoo.registry import get_model_entry

    return get_model_entry(model).load("converter")(source, out)


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {name: (entry["dtype"], tuple(entry["shape"])) for name, entry in header.items()}


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


# --- where the structure (not the bulk tensor bytes) of each format lies -----------------------


def _pb_payload(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every tensor_content in a GraphDef."""
    from zoo.convert.tf_graph import _fields

    spans = []
    for number, wire, node, at in _fields(memoryview(data)):
        if number != 1 or wire != 2:
            continue
        for n, w, attr, a in _fields(node, at):
            if n != 5 or w != 2:
                continue
            for an, aw, value, va in _fields(attr, a):
                if an != 2 or aw != 2:
                    continue
                for vn, vw, tensor, ta in _fields(value, va):
                    if vn != 8 or vw != 2:
                        continue
                    for tn, tw, content, ca in _fields(tensor, ta):
                        if tn == 4 and tw == 2:
                            spans.append((ca, ca + len(content)))
    return spans


def _h5_payload(path: Path) -> list[tuple[int, int]]:
    import h5py

    spans = []
    with h5py.File(path, "r") as h5:
        def visit(_, item):
            if isinstance(item, h5py.Dataset) and item.id.get_offset() is not None:
                spans.append((item.id.get_offset(), item.id.get_offset() + item.id.get_storage_size()))
        h5.visititems(visit)
    return spans


def _pth_payload(path: Path, size: int) -> list[tuple[int, int]]:
    import pickletools

    with open(path, "rb") as f:
        for _ in range(5):  # magic, protocol, sys info, the state, the storage keys
            for _ in pickletools.genops(f):
                pass
        return [(f.tell(), size)]


def _structure(payload: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    gaps, pos = [], 0
    for start, end in sorted(payload):
        if start > pos:
            gaps.append((pos, start))
        pos = max(pos, end)
    if pos < size:
        gaps.append((pos, size))
    return gaps


def _pick(rng: np.random.Generator, gaps: list[tuple[int, int]], size: int) -> int:
    """A byte offset: three times in four inside the structure, else anywhere."""
    if gaps and rng.random() < 0.75:
        lengths = np.array([end - start for start, end in gaps], dtype=np.int64)
        k = int(rng.integers(lengths.sum()))
        i = int(np.searchsorted(np.cumsum(lengths), k, side="right"))
        return gaps[i][0] + k - int(np.cumsum(lengths)[i - 1] if i else 0)
    return int(rng.integers(size))


def main(plan_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    work = Path(plan["workdir"])
    references = {}
    for name, spec in plan["formats"].items():
        out = _convert(spec["model"], Path(spec["path"]), work / f"reference_{name}.safetensors")
        references[name] = _header(out)
        out.unlink()
    from zoo.errors import ZooError

    limit = _vm_size() + int(plan["headroom"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    # Each format's stand-in is copied once; a flip is written in place and undone after its
    # case, and truncations run longest first, each cutting the same copy shorter.
    current, data, gaps, source, copy = None, b"", [], None, None
    for case in plan["cases"]:
        name = case["format"]
        spec = plan["formats"][name]
        if case["kind"] == "file":
            source = Path(case["path"])
            restore = None
        else:
            if current != name:
                if current is not None:
                    copy.unlink()
                current = name
                data = Path(spec["path"]).read_bytes()
                suffix = Path(spec["path"]).name
                payload = (_pb_payload(data) if suffix.endswith(".pb") else _h5_payload(Path(spec["path"]))
                           if suffix.endswith(".h5") else _pth_payload(Path(spec["path"]), len(data))
                           if suffix.endswith(".pth.tar") else [])
                gaps = _structure(payload, len(data))
                copy = work / name / Path(spec["path"]).name
                copy.parent.mkdir(exist_ok=True)
                copy.write_bytes(data)
            source, restore = copy, None
            if case["kind"] == "truncate":
                if case["offset"] > source.stat().st_size:
                    raise RuntimeError("truncations must come longest first")
                os.truncate(source, case["offset"])
                case["detail"] = f"truncated to {case['offset']} of {len(data)} bytes"
            else:
                if source.stat().st_size != len(data):
                    raise RuntimeError("flips must come before truncations")
                rng = np.random.default_rng(case["seed"])
                flips = []
                with open(source, "r+b") as f:
                    for _ in range(int(rng.integers(1, 4))):
                        at = _pick(rng, gaps, len(data))
                        f.seek(at)
                        byte = f.read(1)[0]
                        f.seek(at)
                        f.write(bytes([byte ^ int(rng.integers(1, 256))]))
                        flips.append(at)
                restore = sorted(set(flips))
                case["detail"] = f"bytes flipped at {flips}"
        out = work / "out.safetensors"
        result = {"id": case["id"], "detail": case.get("detail", "")}
        started = time.perf_counter()
        try:
            written = _convert(spec["model"], source, out)
            header = _header(written)
            result["outcome"] = "ok" if header == references[name] else "wrong"
            result["message"] = "" if header == references[name] else "tensor names or shapes differ"
            written.unlink()
        except ZooError as error:
            result.update(outcome="zoo", type=type(error).__name__, message=str(error))
        except BaseException as error:  # noqa: BLE001 - anything else is what the test reports
            result.update(outcome="other", type=type(error).__name__,
                          message="".join(traceback.format_exception(error))[-3000:])
        result["seconds"] = round(time.perf_counter() - started, 3)
        if restore:
            with open(source, "r+b") as f:
                for at in restore:
                    f.seek(at)
                    f.write(data[at : at + 1])
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
