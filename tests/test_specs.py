"""The one name table per model (zoo.specs) against what each side actually has.

Each table is compared with independent statements of the same names: the
PyTorch model's ``state_dict``, the Keras model's weights, the stand-in
upstream files as their formats read back (TF GraphDef, TF checkpoint,
``torch.load``, HDF5) and, when ../shared is here, the real MobileNet release's
checkpoint index and eval graph.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from parity import ROOT, load_script, require_shared
from zoo.layouts import Layout
from zoo.registry import list_models, name_table

MODELS = tuple(list_models())
from zoo.specs import flownet2_sd as flownet_spec
from zoo.specs import mobilenet_v1 as mobilenet_spec
from zoo.specs import resnet50 as resnet_spec

TF_WEIGHT_LEAVES = ("weights", "depthwise_weights", "biases", "kernel", "bias",
                    "gamma", "beta", "moving_mean", "moving_variance")
NON_MODEL_SUFFIXES = ("/ExponentialMovingAverage", "/RMSProp", "/RMSProp_1")


def _torch_model(model: str):
    import torch

    from zoo.models.flownet2_sd import FlowNet2SD
    from zoo.models.mobilenet_v1 import MobileNetV1TfCompat
    from zoo.models.resnet50 import ResNet50TfCompat

    cls = {"mobilenet_v1": MobileNetV1TfCompat, "resnet50": ResNet50TfCompat, "flownet2_sd": FlowNet2SD}[model]
    with torch.device("meta"):
        return cls()


def _keras_model(model: str):
    import zoo.keras

    return {"mobilenet_v1": zoo.keras.mobilenet_v1_tf_compat, "resnet50": zoo.keras.resnet50_tf_compat,
            "flownet2_sd": zoo.keras.flownet2_sd}[model]()


def _table_upstream(model: str) -> dict[str, tuple[int, ...]]:
    return {spec.upstream: spec.upstream_shape for spec in name_table(model)}


def _tf_weight_consts(graph_def, prefix: str) -> dict[str, tuple[int, ...]]:
    """Weight Consts of a frozen GraphDef (TF's own parser), by name, with their shapes."""
    import tensorflow as tf

    return {
        node.name: tuple(tf.make_ndarray(node.attr["value"].tensor).shape)
        for node in graph_def.node
        if node.op == "Const" and node.name.startswith(prefix) and node.name.rsplit("/", 1)[-1] in TF_WEIGHT_LEAVES
    }


@pytest.mark.parametrize("model", MODELS)
def test_table_names_and_shapes_equal_the_pytorch_state_dict(model):
    state = {k: tuple(v.shape) for k, v in _torch_model(model).state_dict().items()
             if not k.endswith("num_batches_tracked")}
    table = {spec.torch: spec.shape for spec in name_table(model)}
    assert table == state


@pytest.mark.parametrize("model", MODELS)
def test_table_names_and_shapes_equal_the_keras_weights(tf, model):
    import keras

    net = _keras_model(model)
    weights = {variable.path: tuple(variable.shape) for variable in net.weights}
    table = {spec.keras_name: spec.keras_shape for spec in name_table(model)}
    assert table == weights
    # The layout rule fits the Keras layer that holds the weight.
    layer_for = {
        Layout.DEPTHWISE: keras.layers.DepthwiseConv2D,
        Layout.CONV_TRANSPOSE: keras.layers.Conv2DTranspose,
        Layout.DENSE: keras.layers.Dense,
    }
    for spec in name_table(model):
        layer = net.get_layer(spec.keras_layer)
        if spec.layout in layer_for:
            assert isinstance(layer, layer_for[spec.layout]), spec
        elif spec.layout is Layout.CONV:
            assert isinstance(layer, keras.layers.Conv2D) and not isinstance(
                layer, (keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose)), spec
        else:
            assert spec.keras_attr in ("bias", "gamma", "beta", "moving_mean", "moving_variance"), spec


def test_mobilenet_table_equals_the_stand_in_release_files(tf, tmp_path):
    from zoo.standins import mobilenet_v1 as mv1

    variables = mv1.make_variables(0)
    frozen = tmp_path / mobilenet_spec.FROZEN_MEMBER
    frozen.write_bytes(mv1.frozen_graph_def(mv1.model_variables(variables)).SerializeToString(deterministic=True))
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(frozen.read_bytes())
    assert _tf_weight_consts(graph_def, "MobilenetV1/") == _table_upstream("mobilenet_v1")

    mv1._write_checkpoint(variables, tmp_path / mobilenet_spec.CHECKPOINT_PREFIX)
    shapes = dict(tf.train.list_variables(str(tmp_path / mobilenet_spec.CHECKPOINT_PREFIX)))
    model = {name: tuple(shape) for name, shape in shapes.items()
             if name.startswith("MobilenetV1/") and not name.endswith(NON_MODEL_SUFFIXES)}
    assert model == _table_upstream("mobilenet_v1")


def test_mobilenet_table_equals_the_real_release():
    folder = require_shared() / "upstream" / mobilenet_spec.RELEASE_PREFIX
    index = folder / "ckpt_index_entries.json"
    if not index.is_file():
        pytest.skip(f"{index} is not here")
    entries = json.loads(index.read_text())
    model = {name: tuple(entry["shape"]) for name, entry in entries.items()
             if name.startswith("MobilenetV1/") and not name.endswith(NON_MODEL_SUFFIXES)}
    assert model == _table_upstream("mobilenet_v1")
    info = folder / mobilenet_spec.INFO_MEMBER
    if info.is_file():  # Input: input / Output: MobilenetV1/Predictions/Reshape_1
        text = info.read_text()
        assert f"Input: {mobilenet_spec.INPUT_NODE}\n" in text and f"Output: {mobilenet_spec.OUTPUT_NODE}\n" in text
    eval_pbtxt = folder / mobilenet_spec.EVAL_PBTXT_MEMBER
    if eval_pbtxt.is_file():  # the release's own graph: its variables, and the nodes the table names
        text = eval_pbtxt.read_text()
        for name in (mobilenet_spec.INPUT_NODE, mobilenet_spec.LOGITS_NODE, mobilenet_spec.OUTPUT_NODE,
                     *_table_upstream("mobilenet_v1")):
            assert f'name: "{name}"\n' in text, name


def test_resnet50_table_equals_the_stand_in_frozen_graph(tf, tmp_path):
    from zoo.standins import resnet50 as rn

    path = rn.write_frozen_pb(tmp_path / resnet_spec.PB_NAME, seed=0)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    assert _tf_weight_consts(graph_def, "resnet_model/") == _table_upstream("resnet50")
    names = {node.name for node in graph_def.node}
    assert {resnet_spec.INPUT_NODE, resnet_spec.LOGITS_NODE, resnet_spec.SOFTMAX_NODE, resnet_spec.ARGMAX_NODE} <= names


def test_flownet2_sd_table_equals_the_stand_in_checkpoint_and_caffe_h5(tmp_path):
    import h5py
    import torch

    from zoo.standins import flownet2_sd as fn

    path = fn.write_checkpoint(tmp_path / flownet_spec.CHECKPOINT_NAME)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert set(checkpoint) <= flownet_spec.CHECKPOINT_KEYS
    state = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    assert state == _table_upstream("flownet2_sd")

    h5 = fn.write_caffe_h5(tmp_path / flownet_spec.CAFFE_H5_NAME)
    with h5py.File(h5, "r") as f:
        blobs = {f"{layer}/{blob}": tuple(f["data"][layer][blob].shape)
                 for layer in f["data"] for blob in f["data"][layer]}
    table = {f"{layer}/{blob}": spec.upstream_shape
             for spec in name_table("flownet2_sd") for layer, blob in [flownet_spec.CAFFE_BLOBS[spec.torch]]}
    assert blobs == table
    # NVIDIA's conversion: the five flow heads are Convolution1..5, coarse to fine.
    assert flownet_spec.CAFFE_BLOBS["predict_flow6.weight"] == ("Convolution1", "0")
    assert flownet_spec.CAFFE_BLOBS["predict_flow2.bias"] == ("Convolution5", "1")


# Facts written out by hand, one per model, that the printed table must contain.
KNOWN_LINES = {
    "mobilenet_v1": "MobilenetV1/Conv2d_1_depthwise/depthwise_weights\t3x3x32x1\tfeatures.conv2d_1_depthwise.conv.weight"
                    "\t32x1x3x3\tfeatures-conv2d_1_depthwise-conv/kernel\t3x3x32x1",
    "resnet50": "resnet_model/conv2d_1/kernel\t1x1x64x256\tlayer1.0.downsample.0.weight\t256x64x1x1"
                "\tlayer1-0-downsample-0/kernel\t1x1x64x256",
    "flownet2_sd": "deconv5.0.weight\t1024x512x4x4\tdeconv5.0.weight\t1024x512x4x4\tdeconv5-0/kernel\t4x4x512x1024"
                   "\tdata/deconv5/0",
}


@pytest.mark.parametrize("model", MODELS)
def test_convert_script_prints_the_name_table(model, capsys):
    assert load_script("convert").main([model, "--names"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# upstream")
    rows = [line.split("\t") for line in lines[1:]]
    assert KNOWN_LINES[model] in lines[1:]
    state = {k: tuple(v.shape) for k, v in _torch_model(model).state_dict().items()
             if not k.endswith("num_batches_tracked")}
    printed = {row[2]: tuple(int(n) for n in row[3].split("x")) for row in rows}
    assert printed == state
    assert len({row[0] for row in rows}) == len({row[4] for row in rows}) == len(rows) == len(state)


def test_convert_script_still_needs_source_and_out_without_names(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("convert").main(["resnet50"])
    assert exit_info.value.code == 2
    assert "--source" in capsys.readouterr().err


def test_keras_side_imports_no_pytorch_model_and_specs_no_framework():
    code = ("import sys, zoo.keras\n"
            "assert 'zoo.models' not in sys.modules, sorted(m for m in sys.modules if m.startswith('zoo.models'))\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    code = ("import sys, zoo.specs.mobilenet_v1, zoo.specs.resnet50, zoo.specs.flownet2_sd\n"
            "bad = [m for m in ('torch', 'keras', 'tensorflow', 'zoo.models', 'zoo.standins') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_source_tree_imports_point_one_way():
    """zoo/keras never imports zoo.models or torch; zoo/convert and zoo/eval never import zoo.standins."""
    import re

    def imports(folder: str, pattern: str) -> list[str]:
        hits = []
        for path in sorted((ROOT / "zoo" / folder).glob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if re.match(r"\s*(from|import)\s", line) and re.search(pattern, line):
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
        return hits

    assert imports("keras", r"(\.\.models|zoo\.models|\btorch\b)") == []
    assert imports("convert", r"standins") == []
    assert imports("eval", r"standins") == []


def _write_mobilenet_weights(path, drop: str | None = None, reshape: str | None = None):
    from zoo.convert.canonical import write_canonical

    rng = np.random.default_rng(0)
    tensors = {}
    for spec in name_table("mobilenet_v1"):
        if spec.torch == drop:
            continue
        shape = spec.shape[::-1] if spec.torch == reshape else spec.shape
        tensors[spec.torch] = rng.standard_normal(shape).astype(np.float32)
    return write_canonical(tensors, path, {"model": "mobilenet_v1"})


def test_keras_loader_goes_through_the_table_and_names_bad_tensors(tf, tmp_path):
    import zoo.keras
    from zoo.errors import FormatError, TensorShapeError
    from zoo.keras.weights import load_canonical_into_keras

    good = _write_mobilenet_weights(tmp_path / "good.safetensors")
    net = zoo.keras.mobilenet_v1_tf_compat(good)
    from safetensors.numpy import load_file

    state = load_file(str(good))
    depthwise = net.get_layer("features-conv2d_1_depthwise-conv").kernel
    # PyTorch (C, 1, kh, kw) -> Keras (kh, kw, C, 1), independently of zoo.layouts.
    np.testing.assert_array_equal(np.asarray(depthwise),
                                  state["features.conv2d_1_depthwise.conv.weight"].transpose(2, 3, 0, 1))
    missing = _write_mobilenet_weights(tmp_path / "missing.safetensors", drop="features.conv2d_5_pointwise.bn.running_var")
    with pytest.raises(FormatError, match=r"missing tensor features\.conv2d_5_pointwise\.bn\.running_var"):
        load_canonical_into_keras(net, missing, "mobilenet_v1")
    bad = _write_mobilenet_weights(tmp_path / "bad.safetensors", reshape="features.conv2d_3_pointwise.conv.weight")
    with pytest.raises(TensorShapeError, match=r"features\.conv2d_3_pointwise\.conv\.weight.*conv2d_3_pointwise-conv/kernel"):
        load_canonical_into_keras(net, bad, "mobilenet_v1")


@pytest.mark.parametrize("layout, shape, multiplier", [
    (Layout.CONV, (64, 3, 7, 5), 1),
    (Layout.DEPTHWISE, (12, 1, 3, 3), 3),
    (Layout.CONV_TRANSPOSE, (1024, 512, 4, 4), 1),
    (Layout.DENSE, (1001, 2048), 1),
    (Layout.VECTOR, (7,), 1),
])
def test_shape_rule_agrees_with_the_array_rule(layout, shape, multiplier):
    from zoo.layouts import torch_to_tf, torch_to_tf_shape

    array = np.zeros(shape, np.float32)
    assert torch_to_tf_shape(layout, shape, multiplier) == torch_to_tf(layout, array, multiplier).shape
    with pytest.raises(ValueError):
        torch_to_tf_shape(layout, shape + (1,), multiplier)
