"""The canonical .safetensors writer: readable by the safetensors library, deterministic, atomic."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from zoo.convert.canonical import write_canonical


def test_written_file_reads_back_with_safetensors(tmp_path, rng):
    tensors = {"b.weight": rng.standard_normal((3, 2, 1, 5)).astype(np.float32), "a": np.arange(7, dtype=np.float64)}
    path = write_canonical(tensors, tmp_path / "x.safetensors", {"source_sha256": "abc", "model": "m"})
    loaded = load_file(str(path))
    assert loaded.keys() == tensors.keys()
    for name, value in tensors.items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], value.astype(np.float32))
    with safe_open(str(path), "np") as f:
        assert f.metadata() == {"source_sha256": "abc", "model": "m"}


def test_deterministic_whatever_the_insertion_order(tmp_path, rng):
    a = {"x": rng.standard_normal(4).astype(np.float32), "y": np.ones((2, 2), np.float32)}
    b = dict(reversed(list(a.items())))
    first = write_canonical(a, tmp_path / "1.safetensors", {"k1": "v", "k2": "w"}).read_bytes()
    second = write_canonical(b, tmp_path / "2.safetensors", {"k2": "w", "k1": "v"}).read_bytes()
    assert first == second


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(Exception):
        write_canonical({"x": object()}, tmp_path / "bad.safetensors", {})
    assert list(tmp_path.iterdir()) == []
