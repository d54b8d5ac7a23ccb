"""Converters check the graph's ops, not only its constants (zoo.convert.graph_check).

Each stand-in graph (written by zoo.standins in the upstream format) converts;
graphs with the same constants but other ops (built by editing the stand-in's
GraphDef with TensorFlow's protobuf API, or by the stand-in builder with the
stride moved) are refused by the real converter with a FormatError naming the
node and both values, and leave no output file. Where ../shared holds the real
upstream MobileNet eval graph, its ops pass the same check.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from parity import require_shared
from zoo.errors import FormatError

# --- the expectations, from zoo.specs, are what the PyTorch ports compute ----------------------


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _port_padding(module):
    """The zero padding a PyTorch convolution applies: fixed per axis, or "SAME" (Conv2dSame, size-dependent)."""
    from zoo.layers.conv2d_same import Conv2dSame

    assert module.padding_mode == "zeros"
    if isinstance(module, Conv2dSame):
        if not module.static_same_pad:
            return "SAME"
        top, left = _pair(module.padding)
        pads = [[top, top], [left, left]]
        if module._fixed_pad is not None:  # (left, right, top, bottom), applied before the convolution
            l, r, t, b = module._fixed_pad
            pads = [[pads[0][0] + t, pads[0][1] + b], [pads[1][0] + l, pads[1][1] + r]]
        return tuple(map(tuple, pads))
    top, left = _pair(module.padding)
    return ((top, top), (left, left))


def _read_port(model: str, name_map):
    """Every convolution, batch norm and windowed pool module of the PyTorch port, paired with upstream names."""
    import torch
    from torch import nn
    from zoo.convert.graph_check import BatchNormExpect, ConvExpect, PoolExpect
    from zoo.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
    from zoo.registry import get_model_entry

    with torch.device("meta"):
        port = get_model_entry(model).builder("torch")()
    convs, bns, pools = set(), set(), []
    for name, module in port.named_modules():
        if isinstance(module, nn.Conv2d):
            assert module.groups in (1, module.in_channels), f"{name}: a grouped convolution has no TF op"
            op = "Conv2D" if module.groups == 1 else "DepthwiseConv2dNative"
            convs.add(ConvExpect(name, name_map[f"{name}.weight"][0], op, _pair(module.stride),
                                 _pair(module.dilation), _port_padding(module)))
        elif isinstance(module, nn.BatchNorm2d):
            bns.add(BatchNormExpect(name, name_map[f"{name}.weight"][0], name_map[f"{name}.running_var"][0],
                                    float(module.eps)))
        elif isinstance(module, (MaxPool2dSame, AvgPool2dSame)):
            op = "MaxPool" if isinstance(module, MaxPool2dSame) else "AvgPool"
            pools.append(PoolExpect(name, op, _pair(module.kernel_size), _pair(module.stride), "SAME"))
        else:
            assert not isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)), f"{name}: a pool the check does not read"
    return convs, bns, pools


def _graph_checked_models() -> list[str]:
    from zoo.registry import MODELS

    return [name for name, entry in MODELS.items() if entry.graph_expectations is not None]


@pytest.mark.parametrize("model", _graph_checked_models())
def test_expectations_from_specs_are_what_the_port_computes(model):
    """Each model's graph expectations (from zoo.specs) equal what its PyTorch modules compute, exactly."""
    from zoo.convert.graph_check import expectations_for
    from zoo.registry import name_table

    name_map = {spec.torch: (spec.upstream, spec.layout) for spec in name_table(model)}
    expected = expectations_for(model, name_map)
    convs, bns, pools = _read_port(model, name_map)
    assert set(expected.convs) == convs and len(expected.convs) == len(convs)
    assert set(expected.batch_norms) == bns and len(expected.batch_norms) == len(bns)
    # Windowed pools are modules of the port, in order; a global mean is computed in forward.
    assert [p for p in expected.pools if p.op != "global mean"] == pools
    assert all(p.total_stride > 1 for p in expected.pools if p.op == "global mean")


# --- fixtures: each stand-in graph built once -------------------------------------


@pytest.fixture(scope="module")
def resnet(tf):
    from zoo.standins import resnet50

    weights = resnet50.make_weights(0)
    return SimpleNamespace(standin=resnet50, weights=weights, graph=resnet50.frozen_graph_def(weights))


@pytest.fixture(scope="module")
def mobilenet(tf):
    from zoo.standins import mobilenet_v1

    weights = mobilenet_v1.model_variables(mobilenet_v1.make_variables(0))
    return SimpleNamespace(standin=mobilenet_v1, weights=weights, graph=mobilenet_v1.frozen_graph_def(weights))


def _copy(tf, graph):
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph)
    return out


def _node(graph, name: str):
    matches = [n for n in graph.node if n.name == name]
    assert len(matches) == 1, name
    return matches[0]


def _write(graph, path: Path) -> Path:
    path.write_bytes(graph.SerializeToString(deterministic=True))
    return path


def _refused(convert, graph, tmp_path: Path, match: str) -> None:
    """The real converter refuses the serialized graph with ``match`` and writes nothing."""
    pb = _write(graph, tmp_path / "mutated.pb")
    out = tmp_path / "out.safetensors"
    with pytest.raises(FormatError, match=match):
        convert(pb, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.safetensors")], "a temporary file was left"


def _ints(tf, values):
    return tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(i=list(values)))


# --- one attribute of one node changed: each is refused, naming the node and both values -----------

MN = "MobilenetV1/MobilenetV1"
ATTRIBUTE_EDITS = [
    # A re-export with another epsilon (here TF 2's unraised 1e-5).
    ("resnet", "resnet_model/batch_normalization_7/FusedBatchNorm", "epsilon", 1e-5,
     r"node resnet_model/batch_normalization_7/FusedBatchNorm \(layer1\.1\.bn3\): epsilon expected 1\.001e-05, found 1e-05"),
    ("resnet", "resnet_model/max_pooling2d/MaxPool", "padding", b"VALID",
     r"node resnet_model/max_pooling2d/MaxPool \(maxpool\): padding expected SAME, found VALID"),
    ("resnet", "resnet_model/Mean/reduction_indices", "value", np.array([1, 2, 3], np.int32),
     r"node resnet_model/Mean \(.*\): reduction axes expected \[1, 2\], found \[1, 2, 3\]"),
    ("mobilenet", f"{MN}/Conv2d_2_depthwise/depthwise", "strides", [1, 1, 1, 1],
     rf"node {MN}/Conv2d_2_depthwise/depthwise \(features\.conv2d_2_depthwise\.conv\): "
     r"strides expected \[1, 2, 2, 1\], found \[1, 1, 1, 1\]"),
    ("mobilenet", f"{MN}/Conv2d_3_depthwise/depthwise", "padding", b"VALID",
     rf"node {MN}/Conv2d_3_depthwise/depthwise \(features\.conv2d_3_depthwise\.conv\): "
     r"padding expected pads H \(1, 1\) W \(1, 1\), found pads H \(0, 0\) W \(0, 0\) \(graph: VALID\)"),
    # A strided SAME conv, whose pads depend on the input size.
    ("mobilenet", f"{MN}/Conv2d_0/Conv2D", "padding", b"VALID",
     rf"node {MN}/Conv2d_0/Conv2D \(features\.conv2d_0\.conv\): padding expected SAME "
     r"\(pads depend on the input size\), found pads H \(0, 0\) W \(0, 0\)"),
    ("mobilenet", f"{MN}/Conv2d_5_pointwise/BatchNorm/FusedBatchNorm", "epsilon", 1e-5,
     rf"node {MN}/Conv2d_5_pointwise/BatchNorm/FusedBatchNorm "
     r"\(features\.conv2d_5_pointwise\.bn\): epsilon expected 0\.001, found 1e-05"),
    ("mobilenet", "MobilenetV1/Logits/AvgPool_1a/AvgPool", "ksize", [1, 3, 3, 1],
     r"node MobilenetV1/Logits/AvgPool_1a/AvgPool \(.*\): global average pool expected ksize \[1, 7, 7, 1\] VALID "
     r".*found ksize \[1, 3, 3, 1\] VALID"),
]


def _set_attr(tf, node, key: str, value) -> None:
    """Set one AttrValue: a float, bytes, a list of ints, or an array (a Const's tensor)."""
    attr = node.attr[key]
    if isinstance(value, float):
        attr.f = value
    elif isinstance(value, bytes):
        attr.s = value
    elif isinstance(value, list):
        attr.CopyFrom(_ints(tf, value))
    else:
        attr.tensor.CopyFrom(tf.make_tensor_proto(value))


@pytest.mark.parametrize("model, node, key, value, match", ATTRIBUTE_EDITS,
                         ids=[f"{m}-{n.rsplit('/', 2)[-2]}-{k}" for m, n, k, _, _ in ATTRIBUTE_EDITS])
def test_one_changed_attribute_is_refused(tf, request, tmp_path, model, node, key, value, match):
    from zoo.convert import mobilenet_v1, resnet50

    standin = request.getfixturevalue(model)
    convert = {"resnet": resnet50.convert, "mobilenet": mobilenet_v1.convert}[model]
    graph = _copy(tf, standin.graph)
    _set_attr(tf, _node(graph, node), key, value)
    _refused(convert, graph, tmp_path, match)


# --- ResNet-50 v1.5 -------------------------------------------------------------------


def test_resnet50_standin_passes_and_records_the_graph_epsilon(tf, resnet, tmp_path):
    import zoo
    from safetensors import safe_open
    from zoo.convert.resnet50 import convert

    out = convert(_write(resnet.graph, tmp_path / "resnet50_v1.pb"), tmp_path / "r.safetensors")
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    stored = {n.attr["epsilon"].f for n in resnet.graph.node if n.op.startswith("FusedBatchNorm")}
    assert len(stored) == 1
    assert meta["bn_epsilon"] == f"{stored.pop():.7g}" == "1.001e-05"
    assert meta["graph_checked"] == "53 convolutions, 53 batch norms, 2 pooling ops"
    # The port computes with exactly the epsilon the graph's nodes store (float32 attr).
    model = zoo.resnet50_tf_compat()
    graph_eps = np.float32(_node(resnet.graph, "resnet_model/batch_normalization_30/FusedBatchNorm").attr["epsilon"].f)
    assert {np.float32(m.eps) for m in model.modules() if hasattr(m, "running_var")} == {graph_eps}


def test_resnet50_v1_stride_placement_is_refused(tf, resnet, tmp_path, monkeypatch):
    """ResNet-50 v1 (stride on the first 1x1 of a strided bottleneck, not on the 3x3), same constants."""
    from zoo.convert.resnet50 import convert

    standin = resnet.standin
    v15 = standin._conv_layers()

    def v1_layers():
        layers = [list(layer) for layer in v15]
        for i, (kernel, stride, _, _, block) in enumerate(v15):
            if kernel == 3 and stride == 2:  # the 3x3 of a strided block -> stride 1, its 1x1 before -> 2
                layers[i][1], layers[i - 1][1] = 1, 2
        return [tuple(layer) for layer in layers]

    monkeypatch.setattr(standin, "_conv_layers", v1_layers)
    v1 = standin.frozen_graph_def(resnet.weights)
    monkeypatch.undo()
    # The graph really is v1: conv2d_12 (layer2.0.conv1) strided behind a Pad, conv2d_13 SAME stride 1.
    assert list(_node(v1, "resnet_model/conv2d_12/Conv2D").attr["strides"].list.i) == [1, 2, 2, 1]
    assert list(_node(v1, "resnet_model/conv2d_13/Conv2D").attr["strides"].list.i) == [1, 1, 1, 1]
    _refused(
        convert,
        v1,
        tmp_path,
        r"node resnet_model/conv2d_12/Conv2D \(layer2\.0\.conv1\): strides expected \[1, 1, 1, 1\], found \[1, 2, 2, 1\]",
    )


def test_resnet50_same_instead_of_pad_valid_is_refused(tf, resnet, tmp_path):
    """layer2.0.conv2 (3x3 stride 2): SAME pads (0, 1) on even inputs, the port and fixed_padding (1, 1)."""
    from zoo.convert.resnet50 import convert

    graph = _copy(tf, resnet.graph)
    conv = _node(graph, "resnet_model/conv2d_13/Conv2D")
    pad = _node(graph, conv.input[0])
    assert pad.op == "Pad"
    conv.input[0] = pad.input[0]
    conv.attr["padding"].s = b"SAME"
    keep = [n for n in graph.node if n.name not in (pad.name, pad.input[1])]
    del graph.node[:]
    graph.node.extend(keep)
    _refused(
        convert,
        graph,
        tmp_path,
        r"node resnet_model/conv2d_13/Conv2D \(layer2\.0\.conv2\): padding expected pads H \(1, 1\) W \(1, 1\), "
        r"found SAME \(pads depend on the input size\)",
    )


def test_resnet50_other_pad_amounts_are_refused(tf, resnet, tmp_path):
    """The stem's Pad [[0, 0], [3, 3], [3, 3], [0, 0]] changed to TF-SAME-like (2, 3)."""
    from zoo.convert.resnet50 import convert

    graph = _copy(tf, resnet.graph)
    paddings = _node(graph, "resnet_model/Pad/paddings")
    paddings.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array([[0, 0], [2, 3], [2, 3], [0, 0]], np.int32)))
    _refused(
        convert,
        graph,
        tmp_path,
        r"node resnet_model/conv2d/Conv2D \(conv1\): padding expected pads H \(3, 3\) W \(3, 3\), "
        r"found pads H \(2, 3\) W \(2, 3\) \(graph: Pad resnet_model/Pad \[\[0, 0\], \[2, 3\], \[2, 3\], \[0, 0\]\] \+ VALID\)",
    )


def test_resnet50_unfused_batch_norm_epsilon_is_read(tf, resnet, tmp_path):
    """The unfused form (tf.nn.batch_normalization: Rsqrt(variance + epsilon)) carries its epsilon in a Const."""
    from zoo.convert.resnet50 import convert

    def unfused(epsilon: float):
        graph = _copy(tf, resnet.graph)
        name = "resnet_model/batch_normalization_3/FusedBatchNorm"
        fused = _node(graph, name)
        x, gamma, beta, mean, variance = fused.input
        scope = name.rsplit("/", 1)[0] + "/batchnorm"
        f32 = tf.float32.as_datatype_enum

        def add(node_name, op, inputs, **attrs):
            node = graph.node.add(name=node_name, op=op)
            node.input.extend(inputs)
            node.attr["T"].type = f32
            for key, value in attrs.items():
                node.attr[key].CopyFrom(value)

        const = graph.node.add(name=f"{scope}/add/y", op="Const")
        const.attr["dtype"].type = f32
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(epsilon)))
        add(f"{scope}/add", "AddV2", [variance, f"{scope}/add/y"])
        add(f"{scope}/Rsqrt", "Rsqrt", [f"{scope}/add"])
        add(f"{scope}/mul", "Mul", [f"{scope}/Rsqrt", gamma])
        add(f"{scope}/mul_1", "Mul", [x, f"{scope}/mul"])
        add(f"{scope}/mul_2", "Mul", [mean, f"{scope}/mul"])
        add(f"{scope}/sub", "Sub", [beta, f"{scope}/mul_2"])
        # The fused node becomes the final add, so its readers are unchanged.
        fused.op = "AddV2"
        del fused.input[:]
        fused.input.extend([f"{scope}/mul_1", f"{scope}/sub"])
        for key in list(fused.attr):
            if key != "T":
                del fused.attr[key]
        return graph

    good = unfused(1.001e-5)
    # The edited graph is a valid TF graph that computes the same logits.
    x = np.random.default_rng(0).normal(0, 50, (1, 224, 224, 3)).astype(np.float32)
    ref = resnet.standin.run_graph(resnet.graph, x)
    np.testing.assert_allclose(resnet.standin.run_graph(good, x), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert convert(_write(good, tmp_path / "unfused.pb"), tmp_path / "unfused.safetensors").is_file()
    _refused(
        convert,
        unfused(1e-3),
        tmp_path,
        r"node resnet_model/batch_normalization_3/batchnorm/add \(layer1\.0\.bn2\): epsilon expected 1\.001e-05, found 0\.001",
    )


# --- MobileNet-v1 ---------------------------------------------------------------------


def test_mobilenet_release_passes_and_records_the_graph_epsilon(tf, mobilenet, standins, tmp_path):
    import zoo
    from safetensors import safe_open
    from zoo.convert.mobilenet_v1 import convert

    tgz = standins.source("mobilenet_v1")
    out = standins.converted("mobilenet_v1")  # the release .tgz, converted
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    stored = {n.attr["epsilon"].f for n in mobilenet.graph.node if n.op.startswith("FusedBatchNorm")}
    assert meta["bn_epsilon"] == f"{stored.pop():.7g}" == "0.001" and not stored
    assert meta["graph_checked"] == "28 convolutions, 27 batch norms, 1 pooling ops"
    model = zoo.mobilenet_v1_tf_compat()
    assert {np.float32(m.eps) for m in model.modules() if hasattr(m, "running_var")} == {np.float32(0.001)}
    # A checkpoint holds no ops: converting its moving averages is not graph-checked, and records no epsilon.
    ema = convert(tgz, tmp_path / "ema.safetensors", use_moving_averages=True)
    with safe_open(str(ema), "np") as f:
        assert "bn_epsilon" not in f.metadata()


def test_mobilenet_global_pool_graph_passes(tf, mobilenet, tmp_path):
    """slim's global_pool head (a Mean, any input size) is the port's mean too."""
    from zoo.convert.mobilenet_v1 import convert

    graph = mobilenet.standin.frozen_graph_def(mobilenet.weights, image_size=160, global_pool=True)
    assert convert(_write(graph, tmp_path / "gp.pb"), tmp_path / "gp.safetensors").is_file()


def test_mobilenet_extra_convolution_is_refused(tf, mobilenet, tmp_path):
    """A convolution the port does not compute (reading an activation, no weight of the name map)."""
    from zoo.convert.mobilenet_v1 import convert

    graph = _copy(tf, mobilenet.graph)
    extra = graph.node.add(name="MobilenetV1/extra/Conv2D", op="Conv2D")
    extra.input.extend(["MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6", "MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6"])
    extra.attr["padding"].s = b"SAME"
    _refused(convert, graph, tmp_path, r"node MobilenetV1/extra/Conv2D: a Conv2D the port does not compute")


def test_real_mobilenet_eval_graph_passes(tf):
    """The real upstream eval graph (variables, not Consts) has the ops the port computes."""
    from google.protobuf import text_format

    from zoo.convert.graph_check import check_graph
    from zoo.convert.mobilenet_v1 import graph_expectations, name_map
    from zoo.convert.tf_graph import parse_graph_def

    path = require_shared() / "upstream" / "mobilenet_v1_1.0_224" / "mobilenet_v1_1.0_224_eval.pbtxt"
    graph = text_format.Parse(path.read_text(), tf.compat.v1.GraphDef())
    nodes = parse_graph_def(graph.SerializeToString(), str(path))
    summary = check_graph(nodes, graph_expectations(name_map()), path)
    assert summary == {"graph_checked": "28 convolutions, 27 batch norms, 1 pooling ops", "bn_epsilon": "0.001"}
    # And an edit of the real graph is caught the same way.
    _node(graph, "MobilenetV1/MobilenetV1/Conv2d_4_depthwise/depthwise").attr["strides"].CopyFrom(_ints(tf, [1, 1, 1, 1]))
    with pytest.raises(FormatError, match=r"Conv2d_4_depthwise/depthwise .*strides expected \[1, 2, 2, 1\]"):
        check_graph(parse_graph_def(graph.SerializeToString()), graph_expectations(name_map()), path)
