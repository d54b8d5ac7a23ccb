"""Stand-in for MLPerf Inference's ResNet-50 v1.5 frozen graph ``resnet50_v1.pb``.

The real file (its URL and md5 are in the registry entry's weights tag) is TF official
models r1 ``official/resnet`` (``resnet_size=50``, ``resnet_version=1``, i.e. "v1.5": the
stride sits on the 3x3 conv), channels_last, exported 20181001 with TF ~1.11 and frozen. This module writes
the same GraphDef node by node, in the order and with the attrs TF 1.11 gives the
``tf.layers`` graph of ``resnet_model.Model.__call__`` + ``resnet_run_loop.resnet_model_fn``
after ``freeze_graph``; the weights are random but of a realistic scale.
TensorFlow is imported inside the functions only.

Node-name scheme (``tf.layers`` / op-name uniquification under ``resnet_model/``):

* ``input_tensor`` Placeholder float [-1, H, W, 3];
* stem: ``Pad`` (``Pad/paddings``), ``conv2d`` (kernel, ``kernel/read``, ``Conv2D``, VALID
  stride 2), Identity ``initial_conv``, ``batch_normalization/FusedBatchNorm``, ``Relu``,
  ``max_pooling2d/MaxPool``, Identity ``initial_max_pool``;
* 16 bottleneck blocks: [``Pad_k`` if strided] ``conv2d_i`` + ``batch_normalization_i``
  projection shortcut (first block of a stage), then three conv/BN with ``Relu_j``
  after the first two, ``add_k``, ``Relu_j``; Identity ``block_layer1..4`` after each stage;
* head: ``Mean`` (``Mean/reduction_indices``), Identity ``final_reduce_mean``, ``Squeeze``,
  ``dense/MatMul``, ``dense/BiasAdd``, Identity ``final_dense``; then ``ArgMax``
  (``ArgMax/dimension``) and ``softmax_tensor`` outside ``resnet_model/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..errors import FormatError, InputShapeError, TensorShapeError
from ..fileio import atomic_write_bytes
from ..specs import resnet50 as spec
from ..specs.resnet50 import (  # noqa: F401  (re-exported for the stand-in's users)
    ARGMAX_NODE,
    BLOCKS,
    BN_EPSILON,
    FILTERS,
    INPUT_NODE,
    LOGITS_NODE,
    MIN_IMAGE_SIZE,
    NUM_CLASSES,
    PB_NAME,
    SOFTMAX_NODE,
    STRIDES,
)
from .graph_builder import GraphDefWriter
from .tf_session import read_frozen_graph_def, run_graph_def

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

# Facts about the real frozen graph, the architecture and the name table: zoo.specs.resnet50.
_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")  # keras BN build() order
# RMS of MLPerf-preprocessed photos (RGB minus [123.68, 116.78, 103.94], no scaling),
# used to give the stem BN realistic moving statistics for inputs of that scale.
_INPUT_RMS = 70.0


def _conv_layers() -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, in_channels, out_channels, block) for conv2d ... conv2d_52, graph order.

    ``block`` is -1 for the stem, else the 0-based index of the bottleneck block. In a
    stage's first block ``_bottleneck_block_v1`` calls the projection shortcut before
    the main path, so conv2d_1, _11, _24 and _43 are the 1x1 stride-s shortcuts.
    """
    return [(layer.kernel_size, layer.stride, layer.in_channels, layer.out_channels, layer.block)
            for layer in spec.LAYERS]


def weight_shapes() -> dict[str, tuple[int, ...]]:
    """The 267 weight Consts of the frozen graph, in graph order, with their shapes (from the name table)."""
    return {tensor.upstream: tensor.upstream_shape for tensor in spec.TABLE}


WEIGHT_NAMES: tuple[str, ...] = tuple(weight_shapes())


def make_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """All weight Consts, random float32 of realistic scale, deterministic per ``seed``.

    He-normal kernels (``tf.variance_scaling_initializer`` is He-like), BN moving
    statistics that are not the identity, the last BN gamma of each block scaled down
    (0.2-0.5) so the 16 identity shortcuts keep the residual stream bounded, and a
    stem BN whose moving variance matches MLPerf-preprocessed pixels (RMS ~70).
    Logits come out with a std of a few units on photos and on noise in [-124, 152].
    """
    rng = np.random.default_rng(seed)
    layers = _conv_layers()
    last_in_block = {i for i, layer in enumerate(layers)
                     if layer[4] >= 0 and (i + 1 == len(layers) or layers[i + 1][4] != layer[4])}
    out: dict[str, np.ndarray] = {}
    for i, (k, _, cin, cout, _) in enumerate(layers):
        fan_in = k * k * cin
        he = np.float32(np.sqrt(2.0 / fan_in))
        out[spec.LAYERS[i].upstream_kernel] = rng.standard_normal((k, k, cin, cout), np.float32) * he
        bn = spec.LAYERS[i].upstream_batch_norm
        # A He conv sees E[x^2] ~ 0.5 after BN + Relu, so its output variance is ~1;
        # the stem sees raw pixels, so its variance is ~2 * _INPUT_RMS^2.
        scale = 2.0 * _INPUT_RMS ** 2 if i == 0 else 1.0
        gamma_lo, gamma_hi = (0.2, 0.5) if i in last_in_block else (0.7, 1.3)
        out[f"{bn}/gamma"] = rng.uniform(gamma_lo, gamma_hi, cout)
        out[f"{bn}/beta"] = rng.normal(0.0, 0.1, cout)
        out[f"{bn}/moving_mean"] = rng.normal(0.0, 0.2, cout) * np.sqrt(scale)
        out[f"{bn}/moving_variance"] = rng.uniform(0.5, 2.0, cout) * scale
    # tf.layers.dense's default glorot_uniform has std sqrt(2 / (2048 + 1001)) ~ 0.026.
    shapes = weight_shapes()
    kernel, bias = f"{spec.DENSE_SCOPE}/kernel", f"{spec.DENSE_SCOPE}/bias"
    out[kernel] = rng.standard_normal(shapes[kernel], np.float32) * np.float32(0.025)
    out[bias] = rng.normal(0.0, 0.1, shapes[bias])
    return {name: out[name].astype(np.float32) for name in WEIGHT_NAMES}


# --- graph writing -------------------------------------------------------------------

class _Builder(GraphDefWriter):
    """Appends the nodes of the frozen graph, as TF 1.11 ``freeze_graph`` leaves them.

    ``convert_variables_to_constants`` runs ``extract_sub_graph`` (only what
    ``softmax_tensor`` and ``ArgMax`` need, in creation order: initializers, Assigns,
    the unused ``dilation_rate`` and BN momentum Consts, summaries and the training
    ops drop out), turns each VariableV2 into a Const of the same name (dtype + value
    only) and keeps the ``<var>/read`` Identity with its ``_class`` colocation attr. It
    builds a fresh GraphDef and copies only the nodes and the (empty) function
    library, so the frozen file has no ``versions`` field.
    """

    def __init__(self, weights: Mapping[str, np.ndarray]):
        super().__init__()
        self.weights = weights
        self._used: dict[str, int] = {}

    def unique(self, base: str) -> str:
        """Graph.unique_name: ``base``, then ``base_1``, ``base_2``, ..."""
        n = self._used.get(base, 0)
        self._used[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    node = GraphDefWriter.add_node

    def const(self, name: str, value, dtype) -> str:
        return self.node(name, "Const", **self.const_attrs(value, dtype))

    def variable(self, name: str, shape: tuple[int, ...]) -> str:
        """A frozen ``tf.get_variable``: Const + ``read`` Identity; returns ``read``."""
        value = np.asarray(self.weights[name], dtype=np.float32)
        if value.shape != tuple(shape):
            raise TensorShapeError(f"weight {name!r} has shape {value.shape}, expected {tuple(shape)}")
        self.const(name, value, self.tf.float32)
        return self.node(f"{name}/read", "Identity", [name], T=self.type_(), _class=self.cls(name))

    def identity(self, name: str, x: str) -> str:
        return self.node(f"resnet_model/{self.unique(name)}", "Identity", [x], T=self.type_())

    def relu(self, x: str) -> str:
        return self.node(f"resnet_model/{self.unique('Relu')}", "Relu", [x], T=self.type_())

    def conv(self, x: str, kernel: int, stride: int, cin: int, cout: int) -> str:
        """``conv2d_fixed_padding``: strided -> ``fixed_padding`` (tf.pad) + VALID, else SAME."""
        tf = self.tf
        if stride > 1:
            # fixed_padding pads (k-1)//2 before and the rest after; for the 1x1 strided
            # shortcut that is a real Pad node with all-zero paddings.
            beg = (kernel - 1) // 2
            end = kernel - 1 - beg
            pad = f"resnet_model/{self.unique('Pad')}"
            paddings = self.const(f"{pad}/paddings", [[0, 0], [beg, end], [beg, end], [0, 0]], tf.int32)
            x = self.node(pad, "Pad", [x, paddings], T=self.type_(), Tpaddings=self.type_(tf.int32))
        scope = f"resnet_model/{self.unique('conv2d')}"
        w = self.variable(f"{scope}/kernel", (kernel, kernel, cin, cout))
        # tf.layers.conv2d -> nn_ops.Convolution -> gen_nn_ops.conv2d (TF 1.11 attrs).
        return self.node(f"{scope}/Conv2D", "Conv2D", [x, w], T=self.type_(),
                         data_format=self._a(s=b"NHWC"), dilations=self.ints([1, 1, 1, 1]),
                         padding=self._a(s=b"VALID" if stride > 1 else b"SAME"),
                         strides=self.ints([1, stride, stride, 1]), use_cudnn_on_gpu=self._a(b=True))

    def batch_norm(self, x: str, channels: int) -> str:
        """``tf.layers.batch_normalization(fused=True, training=False)``: FusedBatchNorm (not V3)."""
        scope = f"resnet_model/{self.unique('batch_normalization')}"
        params = [self.variable(f"{scope}/{v}", (channels,)) for v in _BN_VARS]
        return self.node(f"{scope}/FusedBatchNorm", "FusedBatchNorm", [x, *params], T=self.type_(),
                         data_format=self._a(s=b"NHWC"), epsilon=self._a(f=BN_EPSILON),
                         is_training=self._a(b=False))


def _image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if min(h, w) < MIN_IMAGE_SIZE:
        raise InputShapeError(f"image_size={image_size}: ResNet-50 needs at least "
                              f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels (its total stride)")
    return int(h), int(w)


def _check_weights(weights: Mapping[str, np.ndarray]) -> None:
    missing = [n for n in WEIGHT_NAMES if n not in weights]
    extra = sorted(set(weights) - set(WEIGHT_NAMES))
    if missing:
        raise FormatError(f"weights lack {len(missing)} tensors, e.g. {missing[0]!r}")
    if extra:
        raise FormatError(f"weights have {len(extra)} unexpected tensors, e.g. {extra[0]!r}")


def frozen_graph_def(weights: Mapping[str, np.ndarray],
                     image_size: int | tuple[int, int] = 224) -> "tf.compat.v1.GraphDef":
    """The frozen ``resnet50_v1.pb`` GraphDef with ``weights`` as Const nodes.

    ``image_size`` (int or (H, W), each >= 32) only sets the placeholder's static
    shape [-1, H, W, 3]; the graph itself is size-agnostic (fixed_padding, SAME
    max pool, reduce_mean head).
    """
    _check_weights(weights)
    h, w = _image_hw(image_size)
    b = _Builder(weights)
    tf = b.tf
    net = b.node(INPUT_NODE, "Placeholder", dtype=b.type_(), shape=b.shape([-1, h, w, 3]))
    layers = iter(_conv_layers())

    def conv_bn(x: str) -> str:
        k, s, cin, cout, _ = next(layers)
        return b.batch_norm(b.conv(x, k, s, cin, cout), cout)

    # Model.__call__ (v1): conv -> 'initial_conv' -> BN -> Relu -> max pool -> 'initial_max_pool'.
    k, s, cin, cout, _ = next(layers)
    net = b.identity("initial_conv", b.conv(net, k, s, cin, cout))
    net = b.relu(b.batch_norm(net, cout))
    net = b.node("resnet_model/max_pooling2d/MaxPool", "MaxPool", [net], T=b.type_(),
                 data_format=b._a(s=b"NHWC"), ksize=b.ints([1, 3, 3, 1]), padding=b._a(s=b"SAME"),
                 strides=b.ints([1, 2, 2, 1]))
    net = b.identity("initial_max_pool", net)
    for stage, blocks in enumerate(BLOCKS, start=1):
        for i in range(blocks):  # _bottleneck_block_v1
            shortcut = conv_bn(net) if i == 0 else net  # projection shortcut + BN first
            x = b.relu(conv_bn(net))
            x = b.relu(conv_bn(x))
            x = conv_bn(x)
            # `inputs += shortcut`: math_ops.add -> op Add (TF 1.11 has no AddV2).
            x = b.node(f"resnet_model/{b.unique('add')}", "Add", [x, shortcut], T=b.type_())
            net = b.relu(x)
        net = b.identity(f"block_layer{stage}", net)  # block_layer: tf.identity(inputs, name)
    # Head: reduce_mean(axes [1, 2], keepdims) -> 'final_reduce_mean' -> squeeze -> dense.
    axes = b.const("resnet_model/Mean/reduction_indices", [1, 2], tf.int32)
    net = b.node("resnet_model/Mean", "Mean", [net, axes], T=b.type_(), Tidx=b.type_(tf.int32),
                 keep_dims=b._a(b=True))
    net = b.identity("final_reduce_mean", net)
    net = b.node("resnet_model/Squeeze", "Squeeze", [net], T=b.type_(), squeeze_dims=b.ints([1, 2]))
    shapes = weight_shapes()
    kernel = b.variable(f"{spec.DENSE_SCOPE}/kernel", shapes[f"{spec.DENSE_SCOPE}/kernel"])
    bias = b.variable(f"{spec.DENSE_SCOPE}/bias", shapes[f"{spec.DENSE_SCOPE}/bias"])
    net = b.node("resnet_model/dense/MatMul", "MatMul", [net, kernel], T=b.type_(),
                 transpose_a=b._a(b=False), transpose_b=b._a(b=False))
    net = b.node("resnet_model/dense/BiasAdd", "BiasAdd", [net, bias], T=b.type_(),
                 data_format=b._a(s=b"NHWC"))
    logits = b.identity("final_dense", net)
    # resnet_model_fn: predictions = {'classes': argmax, 'probabilities': softmax}, in that order.
    dim = b.const(f"{ARGMAX_NODE}/dimension", 1, tf.int32)
    b.node(ARGMAX_NODE, "ArgMax", [logits, dim], T=b.type_(), Tidx=b.type_(tf.int32),
           output_type=b.type_(tf.int64))
    b.node(SOFTMAX_NODE, "Softmax", [logits], T=b.type_())
    return b.gd


def run_graph(graph_def: "tf.compat.v1.GraphDef", images_nhwc: np.ndarray,
              output: str = LOGITS_NODE) -> np.ndarray:
    """Import ``graph_def`` into a fresh graph and run ``output`` on float32 NHWC images."""
    return run_graph_def(graph_def, {f"{INPUT_NODE}:0": np.asarray(images_nhwc, np.float32)}, f"{output}:0")


def write_frozen_pb(path: str | Path, seed: int = 0,
                    image_size: int | tuple[int, int] = 224) -> Path:
    """Write a stand-in ``resnet50_v1.pb`` (serialized frozen GraphDef, random weights).

    ``path`` is the file to write, or an existing directory to write ``resnet50_v1.pb``
    in. The bytes are deterministic per ``seed``; they go to a temporary name in the
    same directory first and are renamed on success. Returns the path written.
    """
    target = Path(path)
    if target.is_dir():
        target = target / PB_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    data = frozen_graph_def(make_weights(seed), image_size).SerializeToString(deterministic=True)
    return atomic_write_bytes(target, data)


# --- the stand-in interface (zoo.registry: ModelEntry.standin) ----------------------------


def write_upstream(folder: str | Path, seed: int = 0) -> Path:
    """Write the stand-in ``resnet50_v1.pb`` into ``folder`` (:func:`write_frozen_pb`); returns its path."""
    return write_frozen_pb(Path(folder) / PB_NAME, seed)


def reference_forward(upstream_file: str | Path, batch: np.ndarray) -> np.ndarray:
    """TensorFlow running the frozen graph on NHWC images: logits (B, 1001)."""
    return run_graph(read_frozen_graph_def(upstream_file), batch)
