"""Stand-in for the MLPerf MobileNet-v1 release ``mobilenet_v1_1.0_224.tgz``.

TF-slim ``nets/mobilenet_v1.py`` (release 2018_08_02). Same members, tensor names,
shapes, dtypes and graph ops as the real archive; the weights are random but of a
realistic scale. The graphs are written node by node in the order and with the attrs
of the real ``mobilenet_v1_1.0_224_eval.pbtxt``, so the stand-in eval graph is that
file. TensorFlow is imported inside the functions only.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping

import numpy as np

from ..errors import FormatError, InputShapeError, TensorShapeError
from ..fileio import atomic_write_bytes
from ..specs import mobilenet_v1 as spec
from ..specs.mobilenet_v1 import (  # noqa: F401  (re-exported for the stand-in's users)
    INPUT_NODE,
    LOGITS_NODE,
    NUM_CLASSES,
    OUTPUT_NODE,
    RELEASE_MEMBERS,
    TGZ_NAME,
)
from .graph_builder import GraphDefWriter
from .tf_session import read_frozen_graph_def, run_graph_def

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

# Facts about the real release and the model's name table: zoo.specs.mobilenet_v1.
NAME = spec.RELEASE_PREFIX
INFO_TXT = f"Model: {NAME}\nInput: {INPUT_NODE}\nOutput: {OUTPUT_NODE}\n"

_BN_EPSILON = spec.BN_EPSILON  # mobilenet_v1_arg_scope: batch_norm_epsilon=0.001
_INIT_STDDEV = 0.09  # mobilenet_v1_arg_scope: truncated_normal_initializer(stddev=0.09)
_BN_CONST = 0.0003  # the dangling `BatchNorm/Const` of the eval graph (value as in the release)
_GRAPH_PRODUCER = 26  # `versions { producer: 26 }` of the real eval graph
_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")


def _model_variable_shapes() -> dict[str, tuple[int, ...]]:
    """The 137 model variables in eval-graph order (kernel + 4 BatchNorm per layer, logits), from the name table."""
    return {tensor.upstream: tensor.upstream_shape for tensor in spec.TABLE}


MODEL_VARIABLES: tuple[str, ...] = tuple(_model_variable_shapes())


def _trainable(name: str) -> bool:
    # The moving statistics are not trained, so they have no RMSProp slots.
    return not name.endswith(("moving_mean", "moving_variance"))


def make_variables(seed: int = 0) -> dict[str, np.ndarray]:
    """All 443 checkpoint tensors of the release, random but of realistic scale.

    Names, dtypes and shapes as in the real ``.ckpt.index``: the 137 model variables,
    their ``/ExponentialMovingAverage`` copies, ``/RMSProp`` and ``/RMSProp_1`` slots of
    the 83 trainable ones, ``global_step`` (int64) and two loss averages. Sorted by name,
    deterministic per ``seed``.
    """
    rng = np.random.default_rng(seed)
    raw: dict[str, np.ndarray] = {}
    for name, shape in _model_variable_shapes().items():
        leaf = name.rsplit("/", 1)[1]
        n = shape[0]
        if leaf in ("weights", "depthwise_weights"):
            # He scale: std sqrt(2 / fan_in); a depthwise kernel's fan_in is 3*3.
            fan_in = int(np.prod(shape[:3])) if leaf == "weights" else 9
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif leaf == "gamma":
            value = rng.uniform(0.5, 1.5, n)
        elif leaf == "beta":
            value = rng.normal(0.05, 0.1, n)
        elif leaf == "moving_mean":
            value = rng.normal(0.0, 0.1, n)
        elif leaf == "moving_variance":
            # With He kernels this keeps the 27 Relu6 layers at a steady scale
            # (logits std about 1 on inputs in [-1, 1]).
            value = rng.uniform(0.5, 1.5, n)
        else:  # biases
            value = rng.normal(0.0, 0.1, n)
        raw[name] = value.astype(np.float32)
    out = dict(raw)
    for name, value in raw.items():
        ema = value * (1.0 + 0.01 * rng.standard_normal(value.shape))
        out[f"{name}/ExponentialMovingAverage"] = ema.astype(np.float32)
        if _trainable(name):
            for slot in ("RMSProp", "RMSProp_1"):
                out[f"{name}/{slot}"] = (1e-4 * rng.random(value.shape) + 1e-7).astype(np.float32)
    out["global_step"] = np.array(rng.integers(100_000, 1_000_000), dtype=np.int64)
    out["softmax_cross_entropy_loss/value/ExponentialMovingAverage"] = np.float32(rng.uniform(0.8, 1.2)).reshape(())
    out["total_loss/ExponentialMovingAverage"] = np.float32(rng.uniform(1.5, 2.0)).reshape(())
    return {k: np.asarray(out[k]) for k in sorted(out)}


def model_variables(variables: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Only the 137 raw model variables (no moving averages, slots or step)."""
    return {name: variables[name] for name in MODEL_VARIABLES}


# --- graph writing -------------------------------------------------------------------

class _Builder(GraphDefWriter):
    """Appends NodeDefs to a GraphDef; ``weights`` given -> frozen (freeze_graph) form.

    Frozen form as ``convert_variables_to_constants`` + ``extract_sub_graph`` produce it:
    each VariableV2 becomes a Const of that name, the ``/read`` Identity stays, and the
    initializers, Assigns and the unused Consts (``dilation_rate``, ``depthwise/Shape``,
    ``BatchNorm/Const``) drop out, the remaining nodes keeping their order.
    """

    def __init__(self, weights: Mapping[str, np.ndarray] | None):
        super().__init__()
        self.weights = weights
        self.gd.versions.producer = _GRAPH_PRODUCER

    def node(self, name: str, op: str, inputs=(), unused: bool = False, **attrs) -> str:
        """Add a node (skipped in the frozen form when ``unused``); return its name."""
        if not (unused and self.weights is not None):
            self.add_node(name, op, inputs, **attrs)
        return name

    def const(self, name: str, value, dtype, unused: bool = False, **attrs) -> str:
        return self.node(name, "Const", unused=unused, **self.const_attrs(value, dtype), **attrs)

    def variable(self, name: str, shape: tuple[int, ...], init: str) -> str:
        """A slim model variable (VariableV2 + initializer + Assign + read); returns ``read``."""
        tf, f32 = self.tf, self.tf.float32
        c = {"_class": self.cls(name)}
        frozen = self.weights is not None
        if init == "truncated_normal":  # slim arg_scope weights_initializer
            s = f"{name}/Initializer/truncated_normal"
            self.const(f"{s}/shape", shape, tf.int32, unused=True, **c)
            self.const(f"{s}/mean", 0.0, f32, unused=True, **c)
            self.const(f"{s}/stddev", _INIT_STDDEV, f32, unused=True, **c)
            self.node(f"{s}/TruncatedNormal", "TruncatedNormal", [f"{s}/shape"], unused=True,
                      seed=self._a(i=0), seed2=self._a(i=0), dtype=self.type_(),
                      T=self.type_(tf.int32), **c)
            self.node(f"{s}/mul", "Mul", [f"{s}/TruncatedNormal", f"{s}/stddev"], unused=True,
                      T=self.type_(), **c)
            self.node(s, "Add", [f"{s}/mul", f"{s}/mean"], unused=True, T=self.type_(), **c)
        else:  # ones / zeros: Fill(shape_as_tensor, Const)
            s = f"{name}/Initializer/{init}"
            self.const(f"{s}/shape_as_tensor", shape, tf.int32, unused=True, **c)
            self.const(f"{s}/Const", 1.0 if init == "ones" else 0.0, f32, unused=True, **c)
            self.node(s, "Fill", [f"{s}/shape_as_tensor", f"{s}/Const"], unused=True,
                      index_type=self.type_(tf.int32), T=self.type_(), **c)
        if frozen:
            value = np.asarray(self.weights[name], dtype=np.float32)
            if value.shape != tuple(shape):
                raise TensorShapeError(f"weight {name!r} has shape {value.shape}, expected {tuple(shape)}")
            self.const(name, value, f32)
        else:
            self.node(name, "VariableV2", shared_name=self._a(s=b""), shape=self.shape(shape),
                      dtype=self.type_(), container=self._a(s=b""), **c)
            self.node(f"{name}/Assign", "Assign", [name, s], validate_shape=self._a(b=True),
                      use_locking=self._a(b=True), T=self.type_(), **c)
        return self.node(f"{name}/read", "Identity", [name], T=self.type_(), **c)

    def conv_attrs(self, stride: int, padding: bytes = b"SAME", dilations: bool = True) -> dict:
        attrs = dict(strides=self.ints([1, stride, stride, 1]), padding=self._a(s=padding),
                     data_format=self._a(s=b"NHWC"), T=self.type_())
        if dilations:
            attrs["dilations"] = self.ints([1, 1, 1, 1])
        return attrs


def _build(weights: Mapping[str, np.ndarray] | None, image_size: int, global_pool: bool):
    """The slim MobileNet-v1 inference graph (``mobilenet_v1(is_training=False)``)."""
    if image_size != 224 and not global_pool:
        raise InputShapeError(f"image_size={image_size} needs global_pool=True: the 7x7 VALID "
                              "AvgPool_1a of the release reduces only a 224x224 input to 1x1")
    b = _Builder(weights)
    tf = b.tf
    b.node(INPUT_NODE, "Placeholder", dtype=b.type_(), shape=b.shape([-1, image_size, image_size, 3]))
    net = INPUT_NODE
    shapes = _model_variable_shapes()
    for layer in spec.LAYERS:
        scope, kind, stride, kshape = layer.scope, layer.kind, layer.stride, shapes[layer.upstream_kernel]
        ops = f"MobilenetV1/MobilenetV1/{scope}"  # the op scope; variables live under spec.SCOPE
        if kind == "conv":  # slim.conv2d(normalizer_fn=batch_norm), no bias
            kernel = b.variable(layer.upstream_kernel, kshape, "truncated_normal")
            b.const(f"{ops}/dilation_rate", [1, 1], tf.int32, unused=True)
            net = b.node(f"{ops}/Conv2D", "Conv2D", [net, kernel], use_cudnn_on_gpu=b._a(b=True),
                         **b.conv_attrs(stride))
        else:  # slim.separable_conv2d(num_outputs=None): tf.nn.depthwise_conv2d, multiplier 1
            kernel = b.variable(layer.upstream_kernel, kshape, "truncated_normal")
            b.const(f"{ops}/depthwise/Shape", kshape, tf.int32, unused=True)
            b.const(f"{ops}/depthwise/dilation_rate", [1, 1], tf.int32, unused=True)
            net = b.node(f"{ops}/depthwise", "DepthwiseConv2dNative", [net, kernel],
                         **b.conv_attrs(stride))
        bn = [b.variable(f"{layer.upstream_batch_norm}/{v}", shapes[f"{layer.upstream_batch_norm}/{v}"],
                         "ones" if v in ("gamma", "moving_variance") else "zeros")
              for v in _BN_VARS]
        net = b.node(f"{ops}/BatchNorm/FusedBatchNorm", "FusedBatchNorm", [net, *bn],
                     is_training=b._a(b=False), epsilon=b._a(f=_BN_EPSILON),
                     data_format=b._a(s=b"NHWC"), T=b.type_())
        b.const(f"{ops}/BatchNorm/Const", _BN_CONST, tf.float32, unused=True)
        net = b.node(f"{ops}/Relu6", "Relu6", [net], T=b.type_())
    if global_pool:  # tf.reduce_mean(net, [1, 2], keep_dims=True, name='global_pool')
        axes = b.const("MobilenetV1/Logits/global_pool/reduction_indices", [1, 2], tf.int32)
        net = b.node("MobilenetV1/Logits/global_pool", "Mean", [net, axes], keep_dims=b._a(b=True),
                     T=b.type_(), Tidx=b.type_(tf.int32))
    else:  # slim.avg_pool2d([7, 7], padding='VALID') with slim's default stride 2
        net = b.node("MobilenetV1/Logits/AvgPool_1a/AvgPool", "AvgPool", [net],
                     ksize=b.ints([1, 7, 7, 1]), **b.conv_attrs(2, b"VALID", dilations=False))
    net = b.node("MobilenetV1/Logits/Dropout_1b/Identity", "Identity", [net], T=b.type_())
    head = spec.LOGITS_SCOPE
    kernel = b.variable(f"{head}/weights", shapes[f"{head}/weights"], "truncated_normal")
    bias = b.variable(f"{head}/biases", shapes[f"{head}/biases"], "zeros")
    b.const(f"{head}/dilation_rate", [1, 1], tf.int32, unused=True)
    net = b.node(f"{head}/Conv2D", "Conv2D", [net, kernel], use_cudnn_on_gpu=b._a(b=True),
                 **b.conv_attrs(1))
    net = b.node(f"{head}/BiasAdd", "BiasAdd", [net, bias], data_format=b._a(s=b"NHWC"), T=b.type_())
    logits = b.node(LOGITS_NODE, "Squeeze", [net], squeeze_dims=b.ints([1, 2]), T=b.type_())
    # slim.softmax: reshape to 2-D, softmax, reshape back to the logits' shape.
    pred = "MobilenetV1/Predictions"
    shape = b.const(f"{pred}/Reshape/shape", [-1, NUM_CLASSES], tf.int32)
    net = b.node(f"{pred}/Reshape", "Reshape", [logits, shape], T=b.type_(), Tshape=b.type_(tf.int32))
    net = b.node(f"{pred}/Softmax", "Softmax", [net], T=b.type_())
    dyn = b.node(f"{pred}/Shape", "Shape", [logits], T=b.type_(), out_type=b.type_(tf.int32))
    b.node(OUTPUT_NODE, "Reshape", [net, dyn], T=b.type_(), Tshape=b.type_(tf.int32))
    return b.gd


def eval_graph_def(image_size: int = 224, global_pool: bool = False) -> "tf.compat.v1.GraphDef":
    """The un-frozen inference graph (VariableV2 + initializers + ``/read``), as the release's eval.pbtxt."""
    return _build(None, image_size, global_pool)


def frozen_graph_def(weights: Mapping[str, np.ndarray], image_size: int = 224,
                     global_pool: bool = False) -> "tf.compat.v1.GraphDef":
    """The frozen inference graph with ``weights`` (the 137 model variables) as Const nodes.

    ``image_size != 224`` needs ``global_pool=True`` (slim's ``tf.reduce_mean`` head
    named ``MobilenetV1/Logits/global_pool`` in place of ``AvgPool_1a``).
    """
    missing = [name for name in MODEL_VARIABLES if name not in weights]
    if missing:
        raise FormatError(f"weights lack {len(missing)} model variables, e.g. {missing[0]!r}")
    return _build(weights, image_size, global_pool)


def run_graph(graph_def: "tf.compat.v1.GraphDef", images_nhwc: np.ndarray,
              output: str = LOGITS_NODE) -> np.ndarray:
    """Import ``graph_def`` into a fresh graph and run ``output`` on float32 NHWC images."""
    return run_graph_def(graph_def, {f"{INPUT_NODE}:0": np.asarray(images_nhwc, np.float32)}, f"{output}:0")


def graph_text(graph_def: "tf.compat.v1.GraphDef") -> str:
    """Text GraphDef as the release's writer printed it: float32 values as Python 2's
    ``str(float)`` (``%.12g``, ``.0`` appended to integral values)."""
    from google.protobuf import text_format

    def twelve_digits(match: "re.Match[str]") -> str:
        text = f"{float(np.float32(match[2])):.12g}"
        return match[1] + (text if any(c in text for c in ".en") else text + ".0")

    return re.sub(r"(?m)^(\s*(?:float_val|f): )(\S+)$", twelve_digits, text_format.MessageToString(graph_def))


def read_pbtxt(path: str | Path) -> "tf.compat.v1.GraphDef":
    """Parse a text GraphDef file."""
    import tensorflow as tf
    from google.protobuf import text_format

    return text_format.Parse(Path(path).read_text(), tf.compat.v1.GraphDef())


def run_eval_graph(pbtxt_path: str | Path, weights: Mapping[str, np.ndarray], images_nhwc: np.ndarray,
                   output: str = LOGITS_NODE) -> np.ndarray:
    """Run a text eval graph (e.g. the REAL upstream one) with ``weights`` fed to each ``<var>/read``."""
    import tensorflow as tf

    graph_def = read_pbtxt(pbtxt_path)
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        feed = {f"{name}/read:0": np.asarray(weights[name], np.float32) for name in MODEL_VARIABLES}
        feed[f"{INPUT_NODE}:0"] = np.asarray(images_nhwc, np.float32)
        with tf.compat.v1.Session(graph=graph) as sess:
            return sess.run(f"{output}:0", feed)


# --- release writing -----------------------------------------------------------------

def _write_checkpoint(variables: Mapping[str, np.ndarray], prefix: Path) -> None:
    """``tf.compat.v1.train.Saver`` (V2) checkpoint + meta graph of the eval graph and all 443 variables."""
    import tensorflow as tf
    from tensorflow.core.framework.variable_pb2 import VariableDef

    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(eval_graph_def(), name="")
        made: dict[str, "tf.Variable"] = {}
        for name in MODEL_VARIABLES:  # wrap the imported VariableV2 nodes as variables
            init = graph.get_operation_by_name(f"{name}/Assign").inputs[1].name
            vdef = VariableDef(variable_name=f"{name}:0", initializer_name=f"{name}/Assign",
                                  snapshot_name=f"{name}/read:0", initial_value_name=init)
            var = v1.Variable(variable_def=vdef, use_resource=False)
            made[name] = var
            graph.add_to_collections([v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MODEL_VARIABLES,
                                      v1.GraphKeys.MOVING_AVERAGE_VARIABLES]
                                     + ([v1.GraphKeys.TRAINABLE_VARIABLES] if _trainable(name) else []), var)
        for name, value in variables.items():  # EMA copies, RMSProp slots, step, loss averages
            if name in made:
                continue
            collections = [v1.GraphKeys.GLOBAL_VARIABLES] + ([v1.GraphKeys.GLOBAL_STEP] if name == "global_step" else [])
            made[name] = v1.get_variable(name, shape=value.shape, dtype=tf.as_dtype(value.dtype),
                                         initializer=v1.zeros_initializer(), trainable=False,
                                         collections=collections, use_resource=False)
        saver = v1.train.Saver(var_list={name: made[name] for name in sorted(made)},
                               write_version=v1.train.SaverDef.V2)
        with v1.Session(graph=graph) as sess:
            # Feed every initializer's value input and run all Assigns in one step.
            sess.run([var.initializer for var in made.values()],
                     {var.initializer.inputs[1]: variables[name] for name, var in made.items()})
            saver.save(sess, str(prefix), write_meta_graph=True, write_state=False)


def _convert_tflite(frozen_pb: Path, size: int = 224) -> bytes:
    """Float TFLite model of the frozen graph (batch 1, as the release's .tflite)."""
    import tensorflow as tf

    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(frozen_pb), input_arrays=[INPUT_NODE], output_arrays=[OUTPUT_NODE],
        input_shapes={INPUT_NODE: [1, size, size, 3]})
    return converter.convert()


def _release_files(work: Path, seed: int) -> Iterator[tuple[str, Path]]:
    variables = make_variables(seed)
    _write_checkpoint(variables, work / spec.CHECKPOINT_PREFIX)
    (work / spec.EVAL_PBTXT_MEMBER).write_text(graph_text(eval_graph_def()))
    frozen = work / spec.FROZEN_MEMBER
    frozen.write_bytes(frozen_graph_def(model_variables(variables)).SerializeToString(deterministic=True))
    (work / f"{NAME}.tflite").write_bytes(_convert_tflite(frozen))
    (work / spec.INFO_MEMBER).write_text(INFO_TXT)
    for member in RELEASE_MEMBERS:
        yield member, work / member


def write_release(dest_dir: str | Path, seed: int = 0) -> Path:
    """Write a stand-in ``mobilenet_v1_1.0_224.tgz`` (the 7 release members, random weights).

    The archive (fixed mtimes, owners and gzip header) is written under a temporary name
    in ``dest_dir`` and renamed on success. Returns its path.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / TGZ_NAME
    with tempfile.TemporaryDirectory(prefix="zoo-mobilenet-v1-") as tmp:
        buffer = io.BytesIO()
        # gzip level 6 as `tar czf`; mtime 0 and no file name keep the bytes reproducible.
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=6, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for member, path in _release_files(Path(tmp), seed):
                info = tarfile.TarInfo(member)
                info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
                with path.open("rb") as f:
                    tar.addfile(info, f)
        atomic_write_bytes(target, buffer.getvalue())
    return target


# --- the stand-in interface (zoo.registry: ModelEntry.standin) ----------------------------


def write_upstream(folder: str | Path, seed: int = 0) -> Path:
    """Write the stand-in upstream release into ``folder`` (:func:`write_release`); returns its path."""
    return write_release(folder, seed)


def reference_forward(upstream_file: str | Path, batch: np.ndarray) -> np.ndarray:
    """TensorFlow running the release's frozen graph on NHWC images: logits (B, 1001)."""
    return run_graph(read_frozen_graph_def(upstream_file, spec.FROZEN_MEMBER), batch)
