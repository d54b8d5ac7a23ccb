"""Damaged and hostile upstream files: always one ZooError, never an unbounded allocation.

Every upstream format zoo converts (the frozen ``.pb`` of ResNet-50 and
MobileNet-v1, MobileNet's release ``.tgz``, NVIDIA's ``.pth.tar`` and
lmb-freiburg's Caffe ``.h5``) is truncated at many offsets and has random bytes
flipped (deterministic seeds, mostly in the file's structure rather than its
bulk tensor bytes), and the real converter is run on each. Hand-written tiny
hostile files cover each failure seen with real damaged downloads (allocations
of 2.2 GB and 4 TiB declared by a few bytes). All of it runs in one
subprocess (tests/fuzz_worker.py) whose address space is capped a little above
what it holds after converting every good stand-in once, so a parser that
allocates what a file merely declares fails the test with MemoryError.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ArgumentError, FormatError, TensorShapeError, ZooError

TESTS = Path(__file__).parent
HEADROOM = 1536 << 20  # well under the 2.2 GB and 4 TiB allocations damaged files once declared
TRUNCATIONS = 20
FLIP_SEEDS = 20
FORMATS = ("resnet50_pb", "mobilenet_pb", "mobilenet_tgz", "flownet2_pth", "flownet2_h5")


# --- a few protobuf wire-format bytes, by hand ---------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int, wire: int = 2) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    if wire == 5:
        return key + payload
    return key + _varint(len(payload)) + payload


def _const_node(tensor: bytes, name: bytes = b"w") -> bytes:
    attr = _field(1, b"value") + _field(2, _field(8, tensor))
    return _field(1, _field(1, name) + _field(2, b"Const") + _field(5, attr))


def _shape(*dims: int) -> bytes:
    return b"".join(_field(2, _field(1, d, wire=0)) for d in dims)


def _hostile_pb() -> dict[str, bytes]:
    """Tiny GraphDefs, each declaring what its bytes cannot hold or what no GraphDef holds."""
    fill = _field(1, 1, wire=0) + _field(2, _shape(1 << 40)) + _field(5, struct.pack("<f", 1.0), wire=5)
    return {
        # 13 bytes: a node whose length varint declares 2 GiB.
        "pb_huge_length": _field(1, b"")[:1] + _varint(1 << 31) + b"\x12\x05Const",
        # A node name sent as a varint (wrong wire type) of 2^31: bytes(2**31) would allocate 2 GiB.
        "pb_wrong_wire_type": _field(1, _field(1, 1 << 31, wire=0)),
        # A Const of 2^40 float32 elements filled from one value: 4 TiB.
        "pb_fill_2_40": _const_node(fill),
        # tensor_content far smaller than its declared 2^20 x 2^20 shape.
        "pb_content_vs_shape": _const_node(_field(1, 1, wire=0) + _field(2, _shape(1 << 20, 1 << 20)) + _field(4, b"\0" * 8)),
        # A shape dim of -5.
        "pb_negative_dim": _const_node(_field(1, 1, wire=0) + _field(2, _shape((1 << 64) - 5)) + _field(4, b"")),
        # A packed float_val whose length runs past the end.
        "pb_packed_overrun": _const_node(_field(1, 1, wire=0) + b"\x2a" + _varint(1 << 33)),
        # A varint of 11 bytes.
        "pb_long_varint": b"\x08" + b"\xff" * 11,
        # A field of wire type 7 (none such).
        "pb_bad_wire": b"\x0f\x00",
        "pb_empty": b"",
    }


def _write_hostile_h5(folder: Path) -> dict[str, Path]:
    import h5py

    files = {}
    path = folder / "h5_4tib.caffemodel.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data/conv0/0", shape=(1 << 40,), dtype="f4", chunks=(1 << 16,))
    files["h5_4tib"] = path
    path = folder / "h5_4tib_right_name_wrong_dims.caffemodel.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data/conv0/0", shape=(64, 6, 1 << 20, 1 << 20), dtype="f4", chunks=(1, 1, 64, 64))
    files["h5_4tib_dims"] = path
    path = folder / "h5_layer_is_dataset.caffemodel.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data/conv0", data=np.zeros(3, np.float32))
    files["h5_layer_is_dataset"] = path
    path = folder / "h5_data_is_dataset.caffemodel.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", data=np.zeros(3, np.float32))
    files["h5_data_is_dataset"] = path
    path = folder / "h5_blob_is_group.caffemodel.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("data/conv0/0")
    files["h5_blob_is_group"] = path
    return files


def _hostile_pth(folder: Path, good: Path) -> dict[str, Path]:
    rng = np.random.default_rng(13)
    contents = {
        "pth_empty": b"",
        "pth_random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "pth_truncated": good.read_bytes()[:300],
        "pth_zip_garbage": b"PK\x03\x04" + rng.integers(0, 256, 2048, dtype=np.uint8).tobytes(),
        "pth_text": b"not a checkpoint\n",
    }
    files = {}
    for name, data in contents.items():
        files[name] = folder / f"{name}.pth.tar"
        files[name].write_bytes(data)
    return files


@pytest.fixture(scope="module")
def fuzz(standins, tmp_path_factory) -> dict:
    """Every case's result, from one worker run: ``{case id: {"outcome", "type", "message", "detail"}}``."""
    from zoo.standins.flownet2_sd import write_caffe_h5

    folder = tmp_path_factory.mktemp("fuzz")
    h5 = write_caffe_h5(folder / "FlowNet2-SD_weights.caffemodel.h5", seed=0)
    sources = {
        "resnet50_pb": (standins.source("resnet50"), "resnet50"),
        "mobilenet_pb": (standins.frozen_graph("mobilenet_v1"), "mobilenet_v1"),
        "mobilenet_tgz": (standins.source("mobilenet_v1"), "mobilenet_v1"),
        "flownet2_pth": (standins.source("flownet2_sd"), "flownet2_sd"),
        "flownet2_h5": (h5, "flownet2_sd"),
    }
    cases = []
    for name, (path, _) in sources.items():
        size = path.stat().st_size
        offsets = sorted({0, 1, 2, 3, 5, 8, 13, 64, 512} | {int(x) for x in np.linspace(0, size - 1, TRUNCATIONS - 9)})
        # The worker needs the flips first and the truncations longest first (it cuts one copy shorter and shorter).
        cases += [{"id": f"{name}/flip/{s}", "format": name, "kind": "flip", "seed": s} for s in range(FLIP_SEEDS)]
        cases += [{"id": f"{name}/truncate/{o}", "format": name, "kind": "truncate", "offset": o}
                  for o in sorted(offsets, reverse=True)]
    hostile = folder / "hostile"
    hostile.mkdir()
    for name, data in _hostile_pb().items():
        (hostile / f"{name}.pb").write_bytes(data)
        cases.append({"id": name, "format": "resnet50_pb", "kind": "file", "path": str(hostile / f"{name}.pb")})
    for name, path in _write_hostile_h5(hostile).items():
        cases.append({"id": name, "format": "flownet2_h5", "kind": "file", "path": str(path)})
    for name, path in _hostile_pth(hostile, sources["flownet2_pth"][0]).items():
        cases.append({"id": name, "format": "flownet2_pth", "kind": "file", "path": str(path)})
    work = folder / "work"
    work.mkdir()
    plan = {
        "formats": {name: {"path": str(path), "model": model} for name, (path, model) in sources.items()},
        "cases": cases,
        "headroom": HEADROOM,
        "workdir": str(work),
    }
    plan_path = folder / "plan.json"
    plan_path.write_text(json.dumps(plan))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]))
    proc = subprocess.run([sys.executable, str(TESTS / "fuzz_worker.py"), str(plan_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result["id"]] = result
    results["__worker__"] = {"returncode": proc.returncode, "stderr": proc.stderr[-4000:], "cases": cases}
    return results


def _result(fuzz: dict, case_id: str) -> dict:
    worker = fuzz["__worker__"]
    assert case_id in fuzz, (
        f"the worker gave no result for {case_id} (exit status {worker['returncode']}; "
        f"it crashed or ran out of memory on it or before it):\n{worker['stderr']}"
    )
    return fuzz[case_id]


def _check_case(fuzz: dict, case_id: str, source_name: str) -> str:
    result = _result(fuzz, case_id)
    assert result["outcome"] in ("zoo", "ok"), f"{case_id} ({result['detail']}): {result['type']}\n{result['message']}"
    if result["outcome"] == "zoo":
        message = result["message"]
        assert message.strip() and message.splitlines()[0].strip(), f"{case_id}: empty message"
        assert source_name in message, f"{case_id}: the message does not name the file: {message}"
        assert "weights_only=False" not in message and "weights_only" not in message, message
    return result["outcome"]


@pytest.mark.parametrize("name", FORMATS)
def test_truncated_files_raise_one_zoo_error(fuzz, name):
    cases = [c for c in fuzz["__worker__"]["cases"] if c["format"] == name and c["kind"] == "truncate"]
    assert len(cases) >= TRUNCATIONS - 5 and cases[-1]["offset"] == 0
    for case in cases:
        outcome = _check_case(fuzz, case["id"], _source_name(name))
        # A tar archive may end early and still hold the frozen graph; any other cut file is refused.
        assert outcome == "zoo" or name == "mobilenet_tgz", f"{case['id']}: a truncated file converted"


@pytest.mark.parametrize("name", FORMATS)
def test_flipped_bytes_raise_one_zoo_error_or_convert(fuzz, name):
    cases = [c for c in fuzz["__worker__"]["cases"] if c["format"] == name and c["kind"] == "flip"]
    assert len(cases) == FLIP_SEEDS
    outcomes = [_check_case(fuzz, case["id"], _source_name(name)) for case in cases]
    # The flips land mostly in the structure: some of them must be noticed.
    assert "zoo" in outcomes, outcomes


def _source_name(name: str) -> str:
    return {"resnet50_pb": "resnet50_v1.pb", "mobilenet_pb": "mobilenet_v1_1.0_224_frozen.pb",
            "mobilenet_tgz": "mobilenet_v1_1.0_224.tgz", "flownet2_pth": "FlowNet2-SD_checkpoint.pth.tar",
            "flownet2_h5": "FlowNet2-SD_weights.caffemodel.h5"}[name]


@pytest.mark.parametrize("case_id, match", [
    ("pb_huge_length", r"pb_huge_length\.pb: .*truncated or corrupt at byte 6: field 1 declares 2147483648 bytes, 7 remain"),
    ("pb_wrong_wire_type", r"pb_wrong_wire_type\.pb: .*at byte 3: node name \(field 1\) is varint, expected length-delimited"),
    ("pb_fill_2_40", r"pb_fill_2_40\.pb: .*declares 4398046511104 bytes, more than the \d+ bytes of the largest tensor"),
    ("pb_content_vs_shape", r"pb_content_vs_shape\.pb: .*declares 4398046511104 bytes"),
    ("pb_negative_dim", r"pb_negative_dim\.pb: .*shape dim of size -5"),
    ("pb_packed_overrun", r"pb_packed_overrun\.pb: .*truncated or corrupt at byte \d+: field 5 declares 8589934592 bytes"),
    ("pb_long_varint", r"pb_long_varint\.pb: .*at byte 1: varint longer than 10 bytes"),
    ("pb_bad_wire", r"pb_bad_wire\.pb: .*at byte 1: field 1 has wire type 7"),
    ("pb_empty", r"pb_empty\.pb: not a valid GraphDef \(no nodes in its 0 bytes\)"),
])
def test_hostile_frozen_graphs(fuzz, case_id, match):
    import re

    result = _result(fuzz, case_id)
    assert result["outcome"] == "zoo" and result["type"] == "FormatError", result
    assert re.search(match, result["message"]), result["message"]


@pytest.mark.parametrize("case_id, error, match", [
    ("h5_4tib", "TensorShapeError", r"h5_4tib\.caffemodel\.h5: data/conv0/0 has shape \(1099511627776,\), expected \(64, 6, 3, 3\)"),
    ("h5_4tib_dims", "TensorShapeError", r"h5_4tib_right_name_wrong_dims\.caffemodel\.h5: data/conv0/0 has shape"),
    ("h5_layer_is_dataset", "FormatError", r"h5_layer_is_dataset\.caffemodel\.h5: data/conv0 is a dataset, expected a group"),
    ("h5_data_is_dataset", "FormatError", r"h5_data_is_dataset\.caffemodel\.h5: 'data' is a dataset, expected a group"),
    ("h5_blob_is_group", "FormatError", r"h5_blob_is_group\.caffemodel\.h5: data/conv0/0 is a group, expected a dataset"),
    ("pth_empty", "FormatError", r"pth_empty\.pth\.tar: not a PyTorch checkpoint .*the file is empty"),
    ("pth_random", "FormatError", r"pth_random\.pth\.tar: not a PyTorch checkpoint \(expected torch.save's zip"),
    ("pth_truncated", "FormatError", r"pth_truncated\.pth\.tar: truncated or corrupt PyTorch checkpoint"),
    ("pth_zip_garbage", "FormatError", r"pth_zip_garbage\.pth\.tar: not a readable zip archive"),
    ("pth_text", "FormatError", r"pth_text\.pth\.tar: not a PyTorch checkpoint"),
])
def test_hostile_flownet2_files(fuzz, case_id, error, match):
    import re

    result = _result(fuzz, case_id)
    assert result["outcome"] == "zoo" and result["type"] == error, result
    assert re.search(match, result["message"]), result["message"]
    assert "weights_only" not in result["message"]


def test_truncated_graph_names_the_byte_offset(standins, tmp_path):
    from zoo.convert.resnet50 import convert

    data = standins.source("resnet50").read_bytes()
    cut = tmp_path / "cut.pb"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.pb: not a valid GraphDef \(truncated or corrupt at byte \d+: "
                                          r"field 1 declares \d+ bytes, \d+ remain; the file has \d+ bytes\)"):
        convert(cut, tmp_path / "out.safetensors")


def test_the_ceiling_is_the_converted_models_own(tmp_path):
    """A Const of 24 MiB (fill from one value) passes the all-models ceiling but not MobileNet-v1's.

    MobileNet-v1's largest tensor is the 1024x1001 float32 logits kernel (about 4 MB;
    zoo/specs/mobilenet_v1.py); 4x headroom keeps the ceiling near 16 MB.
    """
    from zoo.convert.limits import zoo_max_tensor_bytes
    from zoo.convert.mobilenet_v1 import convert

    elements = 6 << 20  # 24 MiB of float32
    assert elements * 4 < zoo_max_tensor_bytes()
    fill = _field(1, 1, wire=0) + _field(2, _shape(elements)) + _field(5, struct.pack("<f", 1.0), wire=5)
    pb = tmp_path / "big_const.pb"
    pb.write_bytes(_const_node(fill))
    with pytest.raises(FormatError, match=r"big_const\.pb: .*declares 25165824 bytes, more than the \d+ bytes"):
        convert(pb, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_error_messages_are_never_empty(tmp_path):
    """Every reader's message says something, so ``str(error).splitlines()[0]`` always works."""
    from zoo.convert.flownet2_sd import read_nvidia_checkpoint
    from zoo.convert.tf_graph import parse_graph_def

    empty = tmp_path / "empty.pth.tar"
    empty.write_bytes(b"")
    for call in (lambda: parse_graph_def(b"\x0a\x05ab", "g.pb"), lambda: read_nvidia_checkpoint(empty)):
        with pytest.raises(ZooError) as info:
            call()
        assert str(info.value).splitlines()[0].strip()


def test_convert_out_is_a_folder(standins, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("convert_script", TESTS.parent / "scripts" / "convert.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    status = script.main(["resnet50", "--source", str(standins.source("resnet50")), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert f"{tmp_path}: is a folder" in err

    from zoo.convert.canonical import write_canonical

    with pytest.raises(ArgumentError, match="is a folder"):
        write_canonical({"x": np.zeros(1, np.float32)}, tmp_path, {})
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ArgumentError, match="is a file, not a folder"):
        write_canonical({"x": np.zeros(1, np.float32)}, tmp_path / "file" / "out.safetensors", {})


def test_h5_right_shape_is_read_and_a_wrong_dtype_refused(tmp_path):
    """The blob checks refuse a non-float dataset before reading it, and pass a right one."""
    import h5py

    from zoo.convert.flownet2_sd import _read_blob

    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("a", data=np.ones((2, 3), np.float32))
        h5.create_dataset("b", data=np.ones((2, 3), np.int32))
        size = 1 << 20
        assert _read_blob(h5["a"], "a", (2, 3), 1 << 20, path).shape == (2, 3)
        with pytest.raises(FormatError, match="b holds int32, expected float32"):
            _read_blob(h5["b"], "b", (2, 3), size, path)
        with pytest.raises(TensorShapeError, match=r"a has shape \(2, 3\), expected \(3, 2\)"):
            _read_blob(h5["a"], "a", (3, 2), size, path)
        with pytest.raises(FormatError, match="truncated or corrupt: a declares 24 bytes, the file has 10"):
            _read_blob(h5["a"], "a", (2, 3), 10, path)
