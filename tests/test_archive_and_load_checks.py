"""Release archives are read, not unpacked (bounded, named errors); loaded weights are float32 and finite.

The archives here are written by the tests (a gzip bomb, a corrupt frozen
graph, a release without the member); the weights files are a model's own
``state_dict`` with one tensor spoiled.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

import zoo
from zoo.convert import mobilenet_v1, resnet50
from zoo.convert.archive import STREAM_FACTOR, extract_member, read_member_bytes
from zoo.errors import FormatError, ZooError

FROZEN = mobilenet_v1.FROZEN_MEMBER
GIB = 1 << 30


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _write_bomb(path: Path, members: list[tuple[str, int]]) -> Path:
    """A .tgz whose members are ``size`` zero bytes each, written without ever holding them.

    The gzip stream is a concatenation of gzip members (valid: readers decompress
    them all): one for each tar header, and one 16 MiB block of zeros, compressed
    once, repeated as often as needed. 1 GiB of zeros costs about 1 MB on disk.
    """
    block = 16 << 20
    zeros_gz = gzip.compress(bytes(block), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        for name, size in members:
            f.write(gzip.compress(_tar_header(name, size), mtime=0))
            whole, rest = divmod(size, block)
            for _ in range(whole):
                f.write(zeros_gz)
            pad = (-size) % 512
            f.write(gzip.compress(bytes(rest + pad), mtime=0))
        f.write(gzip.compress(bytes(1024), mtime=0))  # end-of-archive blocks
    return path


def _write_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _refused_quickly(call, match: str) -> str:
    """Run ``call``, which must raise a ZooError matching ``match`` within 5 s and 32 MiB of Python memory."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ZooError, match=match) as info:
            call()
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert peak < 32 << 20, f"peak Python memory {peak / 2**20:.0f} MiB"
    return str(info.value)


# --- archives -----------------------------------------------------------------


def test_the_bomb_really_expands(tmp_path):
    """The test's own bomb: ~1 MB on disk, 1 GiB of zeros inside (checked on its first 64 MiB)."""
    bomb = _write_bomb(tmp_path / "bomb.tgz", [(FROZEN, GIB)])
    assert bomb.stat().st_size < 2 << 20
    with gzip.open(bomb) as f:
        head = f.read(512)
        assert tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape").size == GIB
        assert f.read(64 << 20) == bytes(64 << 20)


@pytest.mark.parametrize("first", [None, "junk.bin"], ids=["wanted-member", "member-before-it"])
def test_gzip_bomb_is_refused_from_the_header(tmp_path, first):
    members = [(FROZEN, GIB)] if first is None else [(first, GIB), (FROZEN, 1000)]
    bomb = _write_bomb(tmp_path / "mobilenet_v1_1.0_224.tgz", members)
    out = tmp_path / "out" / "m.safetensors"
    message = _refused_quickly(lambda: mobilenet_v1.convert(bomb, out), "declares 1073741824 bytes")
    assert message.startswith(f"{bomb}: member {first or FROZEN}: ")
    assert not out.parent.exists() and sorted(p.name for p in tmp_path.iterdir()) == [bomb.name]


def test_stream_is_cut_off_at_the_bound_when_each_header_is_within_it(tmp_path):
    """Members each under the bound but many of them: reading stops at STREAM_FACTOR bounds, nothing is written."""
    bound = 64 << 10
    count = STREAM_FACTOR + 2 + (1 << 20) // bound  # past the bound's slack of 1 MiB
    bomb = _write_bomb(tmp_path / "many.tgz", [(f"junk{i}", bound) for i in range(count)] + [(FROZEN, 10)])
    dest = tmp_path / "dest"
    dest.mkdir()
    message = _refused_quickly(lambda: extract_member(bomb, FROZEN, dest, max_bytes=bound), "decompresses to more than")
    assert message.startswith(f"{bomb}: member {FROZEN}: ")
    assert list(dest.iterdir()) == []
    # With a bound that allows it, only the one member is written.
    assert extract_member(bomb, FROZEN, dest, max_bytes=8 << 20).read_bytes() == bytes(10)
    assert [p.name for p in dest.iterdir()] == [FROZEN]


def test_member_over_a_small_bound_is_refused(tmp_path):
    archive = _write_tgz(tmp_path / "a.tgz", {FROZEN: b"x" * 5000})
    with pytest.raises(FormatError, match=rf"{re.escape(str(archive))}: member {FROZEN}: declares 5000 bytes"):
        extract_member(archive, FROZEN, tmp_path, max_bytes=4096)
    assert extract_member(archive, FROZEN, tmp_path, max_bytes=5000).read_bytes() == b"x" * 5000


def test_corrupt_frozen_graph_in_archive_names_the_archive_and_member(tmp_path):
    # Field 1 (node) declaring ~32 MB of data that is not there: a truncated GraphDef.
    archive = _write_tgz(tmp_path / "mobilenet_v1_1.0_224.tgz", {FROZEN: b"\x0a\xff\xff\xff\x0f" + b"\x00" * 100})
    with pytest.raises(FormatError) as info:
        mobilenet_v1.convert(archive, tmp_path / "out.safetensors")
    message = str(info.value)
    assert message.startswith(f"{archive}: member {FROZEN}: "), message
    assert not re.search(re.escape(tempfile.gettempdir()) + r"/tmp\w+", message), f"names a temporary path: {message}"
    assert not (tmp_path / "out.safetensors").exists()


def test_missing_member_lists_what_the_archive_holds(tmp_path):
    archive = _write_tgz(tmp_path / "m.tgz", {"readme.txt": b"hi", "model.tflite": b"\0" * 10})
    with pytest.raises(FormatError) as info:
        mobilenet_v1.convert(archive, tmp_path / "out.safetensors")
    assert str(info.value) == f"{archive}: no member named {FROZEN}; the archive holds: readme.txt, model.tflite"
    many = _write_tgz(tmp_path / "many.tgz", {f"f{i}.txt": b"" for i in range(20)})
    with pytest.raises(FormatError, match=r"the archive holds: f0.txt, f1.txt, .*f7.txt, \.\.\. \(20 in all\)$"):
        extract_member(many, FROZEN, tmp_path)
    empty = _write_tgz(tmp_path / "empty.tgz", {})
    with pytest.raises(FormatError, match="the archive holds: nothing"):
        extract_member(empty, FROZEN, tmp_path)


def test_archive_for_a_model_without_an_archive_member_is_not_a_blank_name(tmp_path):
    archive = _write_tgz(tmp_path / "resnet50.tgz", {"resnet50_v1.pb": b""})
    with pytest.raises(FormatError, match="give the frozen .pb itself"):
        resnet50.convert(archive, tmp_path / "out.safetensors")
    with pytest.raises(FormatError, match="no archive member is known"):
        extract_member(archive, "", tmp_path)


@pytest.mark.parametrize(
    "info, match",
    [
        (dict(name="../" + FROZEN), "leaves the extraction folder"),
        (dict(name="/etc/" + FROZEN), "leaves the extraction folder"),
        (dict(name=FROZEN, type=tarfile.SYMTYPE, linkname="/etc/passwd"), "links and device files"),
        (dict(name=FROZEN, type=tarfile.LNKTYPE, linkname="other"), "links and device files"),
        (dict(name="dev", type=tarfile.CHRTYPE), "links and device files"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, info, match):
    archive = tmp_path / "evil.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo(info.pop("name"))
        for key, value in info.items():
            setattr(member, key, value)
        tar.addfile(member, io.BytesIO(b"") if member.isfile() else None)
    with pytest.raises(FormatError, match=match):
        extract_member(archive, FROZEN, tmp_path / "dest")
    assert not (tmp_path / "dest" / FROZEN).exists()


def test_read_member_bytes_by_pattern_in_memory(tmp_path):
    archive = _write_tgz(tmp_path / "a.tgz", {"x/readme": b"r", "x/" + FROZEN: b"graph", "y_frozen.pb": b"other"})
    assert read_member_bytes(archive, "*_frozen.pb") == ("x/" + FROZEN, b"graph")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tgz"]
    with pytest.raises(FormatError, match=r"member x/mobilenet_v1_1.0_224_frozen.pb: declares 5 bytes"):
        read_member_bytes(archive, "*_frozen.pb", max_bytes=4)
    with pytest.raises(FormatError, match=r"no member named \*.tflite; the archive holds: x/readme, x/"):
        read_member_bytes(archive, "*.tflite")


def test_upstream_graph_for_evaluation_names_archive_and_member(tmp_path):
    from zoo.eval.upstream_tf import load_upstream_graph_def

    archive = _write_tgz(tmp_path / "m.tgz", {FROZEN: b"\x0a\xff\xff\xff\x0f"})
    with pytest.raises(FormatError, match=rf"^{re.escape(str(archive))}: member {FROZEN}: not a binary GraphDef"):
        load_upstream_graph_def("mobilenet_v1", archive)


def test_not_an_archive(tmp_path):
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 20)
    with pytest.raises(FormatError, match="not a readable tar archive"):
        extract_member(bad, FROZEN, tmp_path)
    with pytest.raises(FormatError, match="archive not found"):
        extract_member(tmp_path / "absent.tgz", FROZEN, tmp_path)


# --- weights loading ----------------------------------------------------------

SPOILED = "features.conv2d_3_pointwise.conv.weight"


def _spoil(state: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    state = dict(state)
    value = state[SPOILED].copy()
    if how == "nan":
        value.flat[7] = np.nan
    elif how == "inf":
        value.flat[3] = -np.inf
    elif how == "float16":
        value = value.astype(np.float16)
    elif how == "int8":
        value = np.clip(value * 100, -128, 127).astype(np.int8)
    state[SPOILED] = value
    return state


BAD = [("nan", r"holds non-finite values \(1 NaN of"), ("inf", r"holds non-finite values \(1 Inf of"),
       ("float16", "is float16; converted weights are float32"), ("int8", "is int8; converted weights are float32")]


@pytest.fixture(scope="module")
def good_state() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    model = zoo.mobilenet_v1_tf_compat()
    return {k: v.numpy().copy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def files(good_state, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    paths = {"good": folder / "good.safetensors"}
    save_numpy(good_state, str(paths["good"]))
    for how, _ in BAD:
        paths[how] = folder / f"{how}.safetensors"
        save_numpy(_spoil(good_state, how), str(paths[how]))
    return paths


@pytest.mark.parametrize("how, match", BAD)
def test_torch_loader_refuses(files, how, match):
    with pytest.raises(FormatError, match=rf"{re.escape(str(files[how]))}: tensor {SPOILED} {match}"):
        zoo.mobilenet_v1_tf_compat(weights=files[how])


@pytest.mark.parametrize("how, match", BAD)
def test_keras_loader_refuses(keras, files, how, match):
    with pytest.raises(FormatError, match=rf"{re.escape(str(files[how]))}: tensor {SPOILED} {match}"):
        zoo.keras.mobilenet_v1_tf_compat(weights=files[how])


def test_good_file_loads_and_cast_is_opt_in(files, good_state):
    from zoo.weights import load_torch_weights

    model = zoo.mobilenet_v1_tf_compat(weights=files["good"])
    assert torch.equal(model.state_dict()[SPOILED], torch.from_numpy(good_state[SPOILED]))
    load_torch_weights(model, files["float16"], cast=True)
    got = model.state_dict()[SPOILED]
    assert got.dtype == torch.float32
    assert torch.equal(got, torch.from_numpy(good_state[SPOILED].astype(np.float16).astype(np.float32)))
    load_torch_weights(model, files["int8"], cast=True)
    assert torch.equal(model.state_dict()[SPOILED], torch.from_numpy(_spoil(good_state, "int8")[SPOILED].astype(np.float32)))
    with pytest.raises(FormatError, match="NaN"):  # a cast does not excuse NaN
        load_torch_weights(model, files["nan"], cast=True)


def test_torch_full_state_dict_with_counters_still_loads(tmp_path):
    """A model's own state_dict (int64 num_batches_tracked included) is not refused for its counters."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    path = tmp_path / "m.safetensors"
    save_torch(model.state_dict(), str(path))
    from zoo.weights import load_torch_weights

    load_torch_weights(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)), path)
    state = dict(model.state_dict())
    state["0.weight"] = state["0.weight"].double()
    save_torch(state, str(path))
    with pytest.raises(FormatError, match="tensor 0.weight is float64"):
        load_torch_weights(model, path)


def test_keras_cast(keras, files, good_state):
    from zoo.keras.weights import load_canonical_into_keras
    from zoo.registry import name_table

    model = zoo.keras.mobilenet_v1_tf_compat()
    load_canonical_into_keras(model, files["float16"], "mobilenet_v1", cast=True)
    spec = next(s for s in name_table("mobilenet_v1") if s.torch == SPOILED)
    variable = next(v for v in model.weights if v.path == spec.keras_name)
    want = good_state[SPOILED].astype(np.float16).astype(np.float32)  # (out, in, 1, 1) -> (1, 1, in, out)
    np.testing.assert_array_equal(np.asarray(variable.numpy()), want.transpose(2, 3, 1, 0))


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_builders_cast_weights_on_request(request, files, good_state, framework):
    """``cast_weights=True`` on the builder (and create_model) casts as the loaders' ``cast=True`` does."""
    if framework == "keras":
        request.getfixturevalue("keras")
    want = good_state[SPOILED].astype(np.float16).astype(np.float32)
    with pytest.raises(FormatError, match="is float16"):
        zoo.create_model("mobilenet_v1", weights=files["float16"], framework=framework)
    model = zoo.create_model("mobilenet_v1", weights=files["float16"], framework=framework, cast_weights=True)
    if framework == "torch":
        np.testing.assert_array_equal(model.state_dict()[SPOILED].numpy(), want)
    else:
        from zoo.registry import name_table

        spec = next(s for s in name_table("mobilenet_v1") if s.torch == SPOILED)
        variable = next(v for v in model.weights if v.path == spec.keras_name)
        np.testing.assert_array_equal(np.asarray(variable.numpy()), want.transpose(2, 3, 1, 0))
