"""Reading a TensorFlow checkpoint (V2 bundle: ``PREFIX.index`` + ``PREFIX.data-*``)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError, ZooError


def is_checkpoint_prefix(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a checkpoint prefix (``path.index`` exists)."""
    return os.path.isfile(f"{os.fspath(path)}.index")


def read_checkpoint(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of the checkpoint at ``prefix``: ``{variable name: value}``.

    Uses TensorFlow's own reader (the bundle index is a LevelDB table); the
    frozen ``.pb`` route needs no TensorFlow.
    """
    try:
        import tensorflow as tf
    except ImportError:
        raise ZooError(
            "reading a TF checkpoint needs TensorFlow (pip install 'zoo[tensorflow]'); "
            "converting from the frozen .pb needs none"
        ) from None
    try:
        reader = tf.train.load_checkpoint(os.fspath(prefix))
        return {name: np.asarray(reader.get_tensor(name)) for name in reader.get_variable_to_shape_map()}
    except (tf.errors.OpError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FormatError(f"{prefix}: not a readable TF checkpoint ({message})") from None
