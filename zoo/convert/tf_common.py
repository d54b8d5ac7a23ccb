"""The conversion path shared by TF-born models: upstream tensors -> name map -> canonical file."""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from ..errors import FormatError, TensorShapeError
from ..layouts import Layout, tf_to_torch, torch_to_tf
from .archive import extract_member
from .canonical import CONVERTER_VERSION, sha256_file, write_canonical
from .graph_check import EXPECTATIONS, check_graph
from .tf_checkpoint import is_checkpoint_prefix, read_checkpoint
from .tf_graph import GraphNode, read_frozen_graph

NameMap = Mapping[str, tuple[str, Layout]]  # canonical name -> (upstream name, layout rule)
EMA_SUFFIX = "/ExponentialMovingAverage"


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).endswith((".tgz", ".tar.gz", ".tar"))


def source_sha256(source: str | os.PathLike) -> str:
    """sha256 of a source file, or of a checkpoint's index and data files together."""
    if is_checkpoint_prefix(source):
        prefix = os.fspath(source)
        parts = sorted(Path(prefix).parent.glob(Path(prefix).name + ".data-*")) + [Path(prefix + ".index")]
        return ",".join(sha256_file(p) for p in parts)
    return sha256_file(source)


def read_upstream(
    source: str | os.PathLike,
    frozen_member: str,
    checkpoint_member_prefix: str,
    from_checkpoint: bool,
    workdir: str,
) -> tuple[dict[str, np.ndarray], str, list[GraphNode] | None]:
    """The tensors of a release archive, a frozen ``.pb`` or a checkpoint prefix, which it was,
    and the graph's nodes (``None`` for a checkpoint: it holds variables, no ops)."""
    if is_archive(source):
        if not from_checkpoint:
            nodes, consts = read_frozen_graph(extract_member(source, frozen_member, workdir))
            return consts, "frozen graph constants", nodes
        for suffix in (".index", ".data-00000-of-00001"):
            extract_member(source, checkpoint_member_prefix + suffix, workdir)
        return read_checkpoint(os.path.join(workdir, checkpoint_member_prefix)), "checkpoint", None
    if is_checkpoint_prefix(source):
        return read_checkpoint(source), "checkpoint", None
    if not os.path.isfile(source):
        raise FormatError(f"source not found: {source} (give the release .tgz, the frozen .pb or a checkpoint prefix)")
    if from_checkpoint:
        raise FormatError(f"{source}: moving averages live in the checkpoint, not in a frozen graph")
    nodes, consts = read_frozen_graph(source)
    return consts, "frozen graph constants", nodes


def map_tensors(
    upstream: Mapping[str, np.ndarray],
    name_map: NameMap,
    expected_shapes: Mapping[str, tuple[int, ...]],
    source: str | os.PathLike,
    use_moving_averages: bool = False,
) -> dict[str, np.ndarray]:
    """Fill every canonical tensor from its upstream tensor, converting layout and checking shape."""
    canonical: dict[str, np.ndarray] = {}
    for name in sorted(name_map):
        upstream_name, layout = name_map[name]
        if use_moving_averages:
            upstream_name += EMA_SUFFIX
        if upstream_name not in upstream:
            raise FormatError(f"{source}: missing tensor {upstream_name} (needed for {name})")
        array = np.asarray(upstream[upstream_name])
        if array.dtype != np.float32:
            raise FormatError(f"{source}: tensor {upstream_name} is {array.dtype}, expected float32")
        want = expected_shapes[name]
        want_upstream = torch_to_tf(layout, np.empty(want, np.float32)).shape
        if array.shape != want_upstream:
            raise TensorShapeError(
                f"{source}: tensor {upstream_name} has shape {tuple(array.shape)}, expected {tuple(want_upstream)}"
            )
        canonical[name] = tf_to_torch(layout, array)
    return canonical


def check_all_used(
    upstream: Iterable[str], used: Iterable[str], is_ignored: Callable[[str], bool], source: str | os.PathLike
) -> None:
    """Every upstream tensor is either used or ignored on purpose; anything else is an error."""
    leftover = sorted(set(upstream) - set(used) - {n for n in upstream if is_ignored(n)})
    if leftover:
        raise FormatError(f"{source}: unexpected upstream tensor(s) {', '.join(leftover[:5])}: not in the name map")


def convert_tf_release(
    model: str,
    source: str | os.PathLike,
    out: str | os.PathLike,
    name_map: NameMap,
    expected_shapes: Mapping[str, tuple[int, ...]],
    is_ignored: Callable[[str, str], bool],
    frozen_member: str = "",
    checkpoint_member_prefix: str = "",
    use_moving_averages: bool = False,
) -> Path:
    """Convert a TF release to the canonical file; nothing is written unless all checks pass.

    ``is_ignored(name, kind)`` says whether an upstream tensor that the name map
    does not use is ignored on purpose (``kind`` is "checkpoint" or
    "frozen graph constants").
    """
    source = os.fspath(source)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            upstream, kind, nodes = read_upstream(
                source, frozen_member, checkpoint_member_prefix, use_moving_averages, workdir
            )
        except tarfile.TarError as error:
            raise FormatError(f"{source}: {error}") from None
        if use_moving_averages and kind != "checkpoint":
            raise FormatError(f"{source}: moving averages live in the checkpoint, not in a frozen graph")
        canonical = map_tensors(upstream, name_map, expected_shapes, source, use_moving_averages)
        raw_names = {upstream_name for upstream_name, _ in name_map.values()}
        used = {n + EMA_SUFFIX for n in raw_names} if use_moving_averages else raw_names
        # With moving averages the raw variables they replace are ignored on purpose.
        check_all_used(upstream, used, lambda n: is_ignored(n, kind) or n in raw_names, source)
        # With the tensors right, a frozen graph's ops must compute what the port computes
        # (strides, padding, batch norm epsilon, pooling: zoo.convert.graph_check); a
        # checkpoint holds no ops, so a checkpoint conversion is not checked this way.
        graph_summary = check_graph(nodes, EXPECTATIONS[model](name_map), source) if nodes is not None else {}
        del upstream, nodes  # only the canonical copy is needed from here on
    variables = kind
    if kind == "checkpoint":
        variables = "checkpoint exponential moving averages" if use_moving_averages else "checkpoint raw variables"
    metadata = {
        "model": model,
        "source_file": os.path.basename(source),
        "source_sha256": source_sha256(source),
        "converter_version": CONVERTER_VERSION,
        "variables": variables,
        "format": "pt",
        **graph_summary,
    }
    return write_canonical(canonical, out, metadata)
