"""zoo.keras: the Keras 3 side of zoo (channels_last), on any Keras backend.

The models build, load weights and run under ``KERAS_BACKEND=tensorflow``,
``jax`` or ``torch`` with the same outputs; nothing here imports TensorFlow
itself (only Keras's TensorFlow backend does), and torch is imported only to
resolve a weights tag. Importing this package imports Keras and its backend;
``import zoo`` does not. Without them, the import fails with a message naming
the extra to install (``zoo[keras]``, ``zoo[tensorflow]`` or ``zoo[jax]``).
"""

from ._require import require_keras

require_keras()

from . import layers  # noqa: E402
from .flownet2_sd import flownet2_sd  # noqa: E402
from .mobilenet_v1 import mobilenet_v1_tf_compat  # noqa: E402
from .resnet50 import resnet50_tf_compat  # noqa: E402

# The registry names, as builders (as on ``zoo``). These names shadow the
# submodules as attributes, as ``flownet2_sd`` always has: import from them with
# ``from zoo.keras.mobilenet_v1 import ...``, which reads sys.modules.
mobilenet_v1 = mobilenet_v1_tf_compat
resnet50 = resnet50_tf_compat

__all__ = ["flownet2_sd", "layers", "mobilenet_v1", "mobilenet_v1_tf_compat", "resnet50", "resnet50_tf_compat"]
