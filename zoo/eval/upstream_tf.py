"""The upstream TensorFlow graph of a model (``entry.upstream_graph``), read from its release file and run."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ArgumentError, FormatError, MissingFileError
from ..registry import MODELS, list_models

__all__ = ["load_upstream_graph_def", "upstream_models", "upstream_runner"]

# A release archive whose entry names no member: its frozen graph is the *_frozen.pb one (TF-slim's convention).
_DEFAULT_MEMBER = "*_frozen.pb"


def upstream_models() -> list[str]:
    """The registered models whose upstream is a TensorFlow graph."""
    return [name for name in list_models() if MODELS[name].upstream_graph is not None]


def _upstream_graph(model: str):
    entry = MODELS.get(model)
    if entry is None or entry.upstream_graph is None:
        raise ArgumentError(f"no upstream TensorFlow graph for {model!r}; the models that have one: "
                            f"{', '.join(upstream_models()) or 'none registered'}")
    return entry, entry.upstream_graph


def load_upstream_graph_def(model: str, path: str | os.PathLike) -> "object":
    """The upstream frozen GraphDef: from a ``.pb``, or a release archive's frozen-graph member.

    The member is read in memory, bounded (:mod:`zoo.convert.archive`); nothing is unpacked.
    Raises :class:`~zoo.errors.FormatError` when the file is not a GraphDef or
    lacks the entry's input or logits node.
    """
    import tensorflow as tf

    entry, graph = _upstream_graph(model)
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such upstream file")
    where = str(path)
    if tarfile.is_tarfile(path):
        from ..convert.archive import read_member_bytes
        from ..convert.tf_common import member_bounds
        from ..specs.common import torch_shapes

        bound = member_bounds(model, torch_shapes(entry.load("name_table")))[0]
        member, data = read_member_bytes(path, graph.frozen_member or _DEFAULT_MEMBER, bound)
        where = f"{path}: member {member}"
    else:
        data = path.read_bytes()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:  # protobuf's DecodeError
        raise FormatError(f"{where}: not a binary GraphDef ({error})") from None
    names = {node.name for node in graph_def.node}
    for node in (graph.input_node, graph.logits_node):
        if node not in names:
            raise FormatError(f"{path}: the graph has no node {node!r}; is it the upstream {model} graph?")
    return graph_def


def upstream_runner(model: str, path: str | os.PathLike,
                    threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A session on the upstream graph, imported once, feeding its input node and fetching its logits.

    ``threads``: the session's intra-op threads (one inter-op thread); ``None``: TensorFlow's defaults.
    """
    import tensorflow as tf

    _, graph_spec = _upstream_graph(model)
    graph_def = load_upstream_graph_def(model, path)
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    config = None
    if threads is not None:
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
    session = tf.compat.v1.Session(graph=graph, config=config)
    fetch, feed = f"{graph_spec.logits_node}:0", f"{graph_spec.input_node}:0"
    return lambda batch: session.run(fetch, {feed: batch})
