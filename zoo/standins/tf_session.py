"""Running a TensorFlow GraphDef, the reference every TF-born port is tested against."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FormatError

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf


def run_graph_def(graph_def: "tf.compat.v1.GraphDef", feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
    """Import ``graph_def`` into a fresh graph and evaluate the tensor ``output`` (``name:0``) given ``feeds``."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run(output, feeds)


def read_frozen_graph_def(path: str | os.PathLike, member: str | None = None) -> "tf.compat.v1.GraphDef":
    """The frozen GraphDef in ``path``: the file itself, or its archive ``member`` (a ``.tgz`` release)."""
    import tensorflow as tf

    if member is None:
        data = Path(path).read_bytes()
    else:
        with tarfile.open(path) as tar:
            extracted = tar.extractfile(member)
            if extracted is None:
                raise FormatError(f"{path}: member {member} is not a regular file")
            data = extracted.read()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    return graph_def
