"""Running a TensorFlow GraphDef, the reference every TF-born port is tested against."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf


def run_graph_def(graph_def: "tf.compat.v1.GraphDef", feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
    """Import ``graph_def`` into a fresh graph and evaluate the tensor ``output`` (``name:0``) given ``feeds``."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run(output, feeds)
