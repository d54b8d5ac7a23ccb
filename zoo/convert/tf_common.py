"""The conversion path shared by TF-born models: upstream tensors -> name map -> canonical file."""

from __future__ import annotations

import os
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from ..errors import FormatError, TensorShapeError, ZooError
from ..layouts import Layout, tf_to_torch, torch_to_tf
from ..registry import MODELS
from .archive import extract_member
from .canonical import CONVERTER_VERSION, sha256_file, write_canonical
from .graph_check import check_graph, expectations_for
from .tf_checkpoint import is_checkpoint_prefix, read_checkpoint
from .limits import max_tensor_bytes
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


def member_bounds(model: str, expected_shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, int]:
    """The most bytes a release archive's frozen-graph and checkpoint members may hold.

    The release's own size (the registry's, when it records an archive of
    ``model``) bounds each: weights do not compress, so no member holds much
    more than the archive. Else the frozen graph is bounded by twice the
    model's parameter bytes (it is little more than the parameters) and a
    checkpoint's data by eight times (raw variables, moving averages and
    optimizer slots).
    """
    param_bytes = sum(4 * int(np.prod(shape, dtype=np.int64)) for shape in expected_shapes.values())
    entry = MODELS.get(model)
    sizes = [w.upstream.size for w in (entry.weights if entry else ())
             if w.upstream.size and w.upstream.file and is_archive(w.upstream.file)]
    if sizes:
        return max(sizes), max(sizes)
    slack = 1 << 20  # graph plumbing, headers
    return 2 * param_bytes + slack, 8 * param_bytes + slack


def _read_archived_graph(source: str, member: str, workdir: str, max_bytes: int | None, tensor_limit: int | None):
    """A frozen graph read from ``source``'s ``member``; errors name the archive and member, not the temp copy."""
    path = extract_member(source, member, workdir, max_bytes)
    try:
        return read_frozen_graph(path, max_tensor_bytes=tensor_limit)
    except ZooError as error:
        message = str(error)
        where = f"{source}: member {member}"
        message = message.replace(str(path), where) if str(path) in message else f"{where}: {message}"
        raise type(error)(message) from None


def read_upstream(
    source: str | os.PathLike,
    frozen_member: str,
    checkpoint_member_prefix: str,
    from_checkpoint: bool,
    workdir: str,
    max_bytes: tuple[int, int] | None = None,
    tensor_limit: int | None = None,
) -> tuple[dict[str, np.ndarray], str, list[GraphNode] | None]:
    """The tensors of a release archive, a frozen ``.pb`` or a checkpoint prefix, which it was,
    and the graph's nodes (``None`` for a checkpoint: it holds variables, no ops).

    ``max_bytes`` (frozen graph, checkpoint) bounds what is read of an archive's members
    (:func:`member_bounds`); only the members needed are read. ``tensor_limit`` bounds what
    one Const of a frozen graph may declare (:func:`zoo.convert.limits.max_tensor_bytes`).
    """
    frozen_bound, checkpoint_bound = max_bytes or (None, None)
    if is_archive(source):
        source = os.fspath(source)
        if not from_checkpoint:
            if not frozen_member:
                raise FormatError(f"{source}: this model is not converted from an archive; give the frozen .pb itself")
            nodes, consts = _read_archived_graph(source, frozen_member, workdir, frozen_bound, tensor_limit)
            return consts, "frozen graph constants", nodes
        if not checkpoint_member_prefix:
            raise FormatError(f"{source}: this model has no checkpoint in an archive; give the checkpoint prefix itself")
        for suffix in (".index", ".data-00000-of-00001"):
            extract_member(source, checkpoint_member_prefix + suffix, workdir, checkpoint_bound)
        try:
            return read_checkpoint(os.path.join(workdir, checkpoint_member_prefix)), "checkpoint", None
        except ZooError as error:
            prefix = os.path.join(workdir, checkpoint_member_prefix)
            message = str(error).replace(prefix, f"{source}: member {checkpoint_member_prefix}")
            raise type(error)(message) from None
    if is_checkpoint_prefix(source):
        return read_checkpoint(source), "checkpoint", None
    if not os.path.isfile(source):
        raise FormatError(f"source not found: {source} (give the release .tgz, the frozen .pb or a checkpoint prefix)")
    if from_checkpoint:
        raise FormatError(f"{source}: moving averages live in the checkpoint, not in a frozen graph")
    nodes, consts = read_frozen_graph(source, max_tensor_bytes=tensor_limit)
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
                source, frozen_member, checkpoint_member_prefix, use_moving_averages, workdir,
                member_bounds(model, expected_shapes), max_tensor_bytes(expected_shapes.values()),
            )
        except (tarfile.TarError, zlib.error, EOFError) as error:
            # A corrupt archive's compressed stream (zlib) or an early end, whichever reader met it.
            raise FormatError(f"{source}: not a readable release archive ({error or type(error).__name__})") from None
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
        graph_summary = check_graph(nodes, expectations_for(model, name_map), source) if nodes is not None else {}
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
