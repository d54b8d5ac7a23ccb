"""The ResNet-50 v1.5 stand-in ``resnet50_v1.pb``: format facts, determinism, scale, numerics.

The expected names, op types and attrs are restated here from TF official r1
``resnet_model.py`` / ``resnet_run_loop.py`` as TF 1.11 builds and freezes them, not
taken from the module, so a change to the writer's scheme fails these tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import FormatError, InputShapeError, TensorShapeError
from zoo.standins import resnet50 as rn

SHORTCUTS = {1: (64, 256), 11: (256, 512), 24: (512, 1024), 43: (1024, 2048)}  # conv index: (in, out)
# Pad nodes in graph order: stem 7x7, then per strided stage its 1x1 shortcut and its 3x3 conv.
PADS = {"resnet_model/Pad": (3, 3, "conv2d"), "resnet_model/Pad_1": (0, 0, "conv2d_11"),
        "resnet_model/Pad_2": (1, 1, "conv2d_13"), "resnet_model/Pad_3": (0, 0, "conv2d_24"),
        "resnet_model/Pad_4": (1, 1, "conv2d_26"), "resnet_model/Pad_5": (0, 0, "conv2d_43"),
        "resnet_model/Pad_6": (1, 1, "conv2d_45")}
# The attrs TF 1.11 writes for each op (FusedBatchNorm, not V3; Add, not AddV2).
ATTRS = {
    "Placeholder": {"dtype", "shape"}, "Const": {"dtype", "value"}, "Identity": {"T"},
    "Pad": {"T", "Tpaddings"}, "Relu": {"T"}, "Add": {"T"}, "Softmax": {"T"},
    "Conv2D": {"T", "data_format", "dilations", "padding", "strides", "use_cudnn_on_gpu"},
    "FusedBatchNorm": {"T", "data_format", "epsilon", "is_training"},
    "MaxPool": {"T", "data_format", "ksize", "padding", "strides"},
    "Mean": {"T", "Tidx", "keep_dims"}, "Squeeze": {"T", "squeeze_dims"},
    "MatMul": {"T", "transpose_a", "transpose_b"}, "BiasAdd": {"T", "data_format"},
    "ArgMax": {"T", "Tidx", "output_type"},
}


def _n(base: str, i: int) -> str:
    return base if i == 0 else f"{base}_{i}"


def _architecture() -> list[tuple[int, int, int, int]]:
    """(kernel, stride, cin, cout) of conv2d ... conv2d_52, shortcut first in each stage."""
    convs, cin = [(7, 2, 3, 64)], 64
    for blocks, f, s in ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)):
        for b in range(blocks):
            stride = s if b == 0 else 1
            if b == 0:
                convs.append((1, stride, cin, 4 * f))
            convs += [(1, 1, cin, f), (3, stride, f, f), (1, 1, f, 4 * f)]
            cin = 4 * f
    return convs


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return rn.make_weights(0)


@pytest.fixture(scope="module")
def graph(tf, weights):
    return rn.frozen_graph_def(weights)


@pytest.fixture(scope="module")
def nodes(graph):
    return {n.name: n for n in graph.node}


def _random(shape, count: int = 2, seed: int = 1) -> np.ndarray:
    # MLPerf-preprocessed pixels: [0, 255] minus the RGB means, no scaling.
    return np.random.default_rng(seed).uniform(-124, 152, (count, *shape, 3)).astype(np.float32)


def test_interface_constants():
    assert (rn.INPUT_NODE, rn.SOFTMAX_NODE, rn.ARGMAX_NODE) == ("input_tensor", "softmax_tensor", "ArgMax")
    assert rn.LOGITS_NODE == "resnet_model/final_dense"
    assert (rn.BLOCKS, rn.FILTERS, rn.STRIDES) == ((3, 4, 6, 3), (64, 128, 256, 512), (1, 2, 2, 2))


def test_op_counts_attrs_and_frozen_form(graph, nodes):
    ops = [n.op for n in graph.node]
    counts = {op: ops.count(op) for op in set(ops)}
    assert counts == {"Placeholder": 1, "Pad": 7, "Conv2D": 53, "FusedBatchNorm": 53, "Relu": 49, "Add": 16,
                      "MaxPool": 1, "Mean": 1, "Squeeze": 1, "MatMul": 1, "BiasAdd": 1, "ArgMax": 1,
                      "Softmax": 1, "Const": 267 + 7 + 2, "Identity": 267 + 8}
    for n in graph.node:
        # Only the `<var>/read` Identities carry the `_class` colocation attr.
        assert set(n.attr) == ATTRS[n.op] | ({"_class"} if n.name.endswith("/read") else set()), n.name
        assert n.device == ""
    # Frozen: no variables or training machinery, and every node feeds an output.
    by_name, keep, todo = nodes, set(), [rn.SOFTMAX_NODE, rn.ARGMAX_NODE]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(i.split(":")[0] for i in by_name[name].input)
    assert keep == set(by_name)
    assert not graph.HasField("versions")  # convert_variables_to_constants copies nodes + library only
    # Every input is defined before it is used (creation order).
    seen = set()
    for n in graph.node:
        assert all(i.split(":")[0] in seen for i in n.input), n.name
        seen.add(n.name)
    placeholder = nodes["input_tensor"]
    assert placeholder.attr["dtype"].type == 1
    assert [d.size for d in placeholder.attr["shape"].shape.dim] == [-1, 224, 224, 3]


def test_convolutions_pads_and_batch_norms(tf, graph, nodes):
    convs = [n for n in graph.node if n.op == "Conv2D"]
    assert [n.name for n in convs] == [f"resnet_model/{_n('conv2d', i)}/Conv2D" for i in range(53)]
    pad_of = {conv: (name, beg, end) for name, (beg, end, conv) in PADS.items()}
    for i, (node, (k, stride, cin, cout)) in enumerate(zip(convs, _architecture())):
        scope = f"resnet_model/{_n('conv2d', i)}"
        assert list(node.attr["strides"].list.i) == [1, stride, stride, 1], scope
        assert node.attr["data_format"].s == b"NHWC" and list(node.attr["dilations"].list.i) == [1, 1, 1, 1]
        assert node.input[1] == f"{scope}/kernel/read"
        kernel = tf.make_ndarray(nodes[f"{scope}/kernel"].attr["value"].tensor)
        assert kernel.shape == (k, k, cin, cout), scope
        if stride > 1:  # fixed_padding: explicit Pad then VALID
            pad, beg, end = pad_of[_n("conv2d", i)]
            assert node.attr["padding"].s == b"VALID" and node.input[0] == pad, scope
            assert nodes[pad].op == "Pad" and nodes[pad].input[1] == f"{pad}/paddings"
            paddings = tf.make_ndarray(nodes[f"{pad}/paddings"].attr["value"].tensor)
            assert paddings.dtype == np.int32
            np.testing.assert_array_equal(paddings, [[0, 0], [beg, end], [beg, end], [0, 0]])
        else:
            assert node.attr["padding"].s == b"SAME", scope
            assert nodes[node.input[0]].op != "Pad"
        bn = f"resnet_model/{_n('batch_normalization', i)}"
        fbn = nodes[f"{bn}/FusedBatchNorm"]
        assert fbn.op == "FusedBatchNorm"
        assert list(fbn.input) == [f"{scope}/Conv2D" if i else "resnet_model/initial_conv"] + [
            f"{bn}/{v}/read" for v in ("gamma", "beta", "moving_mean", "moving_variance")]
        assert fbn.attr["epsilon"].f == pytest.approx(1.001e-5, rel=1e-6) and not fbn.attr["is_training"].b
        assert fbn.attr["data_format"].s == b"NHWC"
    assert len(PADS) == sum(n.op == "Pad" for n in graph.node)


def test_block_wiring_and_head(tf, nodes):
    # Stem: Pad -> conv2d -> initial_conv -> BN -> Relu -> max pool -> initial_max_pool.
    assert nodes["resnet_model/Pad"].input[0] == "input_tensor"
    assert nodes["resnet_model/initial_conv"].input == ["resnet_model/conv2d/Conv2D"]
    assert nodes["resnet_model/Relu"].input == ["resnet_model/batch_normalization/FusedBatchNorm"]
    pool = nodes["resnet_model/max_pooling2d/MaxPool"]
    assert pool.input == ["resnet_model/Relu"] and pool.attr["padding"].s == b"SAME"
    assert list(pool.attr["ksize"].list.i) == [1, 3, 3, 1] and list(pool.attr["strides"].list.i) == [1, 2, 2, 1]
    assert nodes["resnet_model/initial_max_pool"].input == ["resnet_model/max_pooling2d/MaxPool"]
    # Blocks: Relu_{3k+1}, Relu_{3k+2}, add_k, Relu_{3k+3}; conv indices skip the shortcuts.
    net, conv, block = "resnet_model/initial_max_pool", 1, 0
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        for b in range(blocks):
            if b == 0:
                shortcut = f"resnet_model/batch_normalization_{conv}/FusedBatchNorm"
                assert nodes[f"resnet_model/conv2d_{conv}/Conv2D"].input[0] in (net, f"resnet_model/{_n('Pad', 2 * stage - 3)}")
                assert conv in SHORTCUTS
                conv += 1
            else:
                shortcut = net
            relu = [f"resnet_model/Relu_{3 * block + j}" for j in (1, 2, 3)]
            assert nodes[relu[0]].input == [f"resnet_model/batch_normalization_{conv}/FusedBatchNorm"]
            assert nodes[relu[1]].input == [f"resnet_model/batch_normalization_{conv + 1}/FusedBatchNorm"]
            add = f"resnet_model/{_n('add', block)}"
            assert nodes[add].op == "Add"
            assert list(nodes[add].input) == [f"resnet_model/batch_normalization_{conv + 2}/FusedBatchNorm", shortcut]
            assert nodes[relu[2]].input == [add]
            net, conv, block = relu[2], conv + 3, block + 1
        assert nodes[f"resnet_model/block_layer{stage}"].input == [net]
        net = f"resnet_model/block_layer{stage}"
    assert conv == 53 and block == 16
    mean = nodes["resnet_model/Mean"]
    assert mean.input == ["resnet_model/block_layer4", "resnet_model/Mean/reduction_indices"] and mean.attr["keep_dims"].b
    np.testing.assert_array_equal(tf.make_ndarray(nodes["resnet_model/Mean/reduction_indices"].attr["value"].tensor), [1, 2])
    assert nodes["resnet_model/final_reduce_mean"].input == ["resnet_model/Mean"]
    squeeze = nodes["resnet_model/Squeeze"]
    assert squeeze.input == ["resnet_model/final_reduce_mean"] and list(squeeze.attr["squeeze_dims"].list.i) == [1, 2]
    assert nodes["resnet_model/dense/MatMul"].input == ["resnet_model/Squeeze", "resnet_model/dense/kernel/read"]
    assert nodes["resnet_model/dense/BiasAdd"].input == ["resnet_model/dense/MatMul", "resnet_model/dense/bias/read"]
    assert nodes["resnet_model/final_dense"].input == ["resnet_model/dense/BiasAdd"]
    argmax = nodes["ArgMax"]
    assert argmax.input == ["resnet_model/final_dense", "ArgMax/dimension"]
    assert argmax.attr["output_type"].type == tf.int64.as_datatype_enum
    assert int(tf.make_ndarray(nodes["ArgMax/dimension"].attr["value"].tensor)) == 1
    assert nodes["softmax_tensor"].op == "Softmax" and nodes["softmax_tensor"].input == ["resnet_model/final_dense"]


def test_weight_consts(tf, weights, nodes):
    expected = {}
    for i, (k, _, cin, cout) in enumerate(_architecture()):
        expected[f"resnet_model/{_n('conv2d', i)}/kernel"] = (k, k, cin, cout)
        for v in ("gamma", "beta", "moving_mean", "moving_variance"):
            expected[f"resnet_model/{_n('batch_normalization', i)}/{v}"] = (cout,)
    expected["resnet_model/dense/kernel"] = (2048, 1001)
    expected["resnet_model/dense/bias"] = (1001,)
    assert len(expected) == 53 + 53 * 4 + 2
    assert {k: v.shape for k, v in weights.items()} == expected
    assert all(v.dtype == np.float32 for v in weights.values())
    for i, (cin, cout) in SHORTCUTS.items():
        assert weights[f"resnet_model/conv2d_{i}/kernel"].shape == (1, 1, cin, cout)
    for name, value in weights.items():
        const, read = nodes[name], nodes[f"{name}/read"]
        assert const.op == "Const" and set(const.attr) == {"dtype", "value"}
        np.testing.assert_array_equal(tf.make_ndarray(const.attr["value"].tensor), value)
        assert read.op == "Identity" and read.input == [name]
        assert list(read.attr["_class"].list.s) == [f"loc:@{name}".encode()]
    # Realistic, not identity, statistics.
    assert 0.5 <= weights["resnet_model/batch_normalization_5/moving_variance"].min()
    assert weights["resnet_model/batch_normalization_5/moving_variance"].max() <= 2.0
    assert np.abs(weights["resnet_model/batch_normalization_5/moving_mean"]).max() > 0


def test_write_frozen_pb_is_deterministic(tf, weights, tmp_path):
    a = rn.write_frozen_pb(tmp_path / "a.pb", seed=0)
    (tmp_path / "d").mkdir()
    b = rn.write_frozen_pb(tmp_path / "d", seed=0)  # a directory gets resnet50_v1.pb
    c = rn.write_frozen_pb(tmp_path / "c.pb", seed=1)
    assert b == tmp_path / "d" / "resnet50_v1.pb"
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert a.read_bytes() == rn.frozen_graph_def(weights).SerializeToString(deterministic=True)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.pb", "c.pb", "resnet50_v1.pb"]
    parsed = tf.compat.v1.GraphDef()
    parsed.ParseFromString(c.read_bytes())
    assert [n.name for n in parsed.node] == [n.name for n in rn.frozen_graph_def(weights).node]


@pytest.mark.parametrize("size", [224, (193, 257)])
def test_activation_scale_on_random_inputs(tf, weights, size):
    graph = rn.frozen_graph_def(weights, image_size=size)
    shape = (size, size) if isinstance(size, int) else size
    x = _random(shape)
    names = ["resnet_model/initial_max_pool"] + [f"resnet_model/block_layer{i}" for i in range(1, 5)]
    with tf.Graph().as_default() as g:
        tf.import_graph_def(graph, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            *acts, logits, probs, top = sess.run([f"{n}:0" for n in names] + [
                f"{rn.LOGITS_NODE}:0", f"{rn.SOFTMAX_NODE}:0", f"{rn.ARGMAX_NODE}:0"], {"input_tensor:0": x})
    for name, act in zip(names, acts):
        rms = float(np.sqrt(np.mean(act**2)))
        assert 0.3 < rms < 10, (name, rms)  # O(1) through all 16 residual blocks
    assert acts[-1].shape == (2, -(-shape[0] // 32), -(-shape[1] // 32), 2048)
    assert logits.shape == (2, 1001) and 0.3 < logits.std() < 30
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert top.dtype == np.int64
    np.testing.assert_array_equal(top, logits.argmax(1))


def test_logit_scale_on_photos(tf, weights, graph):
    skimage_data = pytest.importorskip("skimage.data")
    pytest.importorskip("cv2")
    from zoo.preprocessing import preprocess_vgg

    photos = [getattr(skimage_data, n)()[..., ::-1] for n in ("chelsea", "coffee", "astronaut", "rocket")]
    x = np.stack([preprocess_vgg(np.ascontiguousarray(p)) for p in photos])
    assert -124 <= x.min() and x.max() <= 152
    logits = rn.run_graph(graph, x)
    assert np.all((0.3 < logits.std(1)) & (logits.std(1) < 30))


def _independent_forward(tf, w, x):
    """ResNet-50 v1.5 with tf.nn ops in eager mode: pad + VALID for strided convs, SAME otherwise."""
    def conv_bn(h, i, stride):
        if stride > 1:
            k = w[f"resnet_model/{_n('conv2d', i)}/kernel"].shape[0]
            h = tf.pad(h, [[0, 0], [(k - 1) // 2, k // 2], [(k - 1) // 2, k // 2], [0, 0]])
        h = tf.nn.conv2d(h, w[f"resnet_model/{_n('conv2d', i)}/kernel"], stride, "VALID" if stride > 1 else "SAME")
        p = {v: w[f"resnet_model/{_n('batch_normalization', i)}/{v}"]
             for v in ("gamma", "beta", "moving_mean", "moving_variance")}
        return (h - p["moving_mean"]) * (p["gamma"] / np.sqrt(p["moving_variance"] + np.float32(1.001e-5))) + p["beta"]

    h = tf.nn.relu(conv_bn(tf.constant(x), 0, 2))
    h = tf.nn.max_pool2d(h, 3, 2, "SAME")
    i = 1
    for blocks, stride in zip((3, 4, 6, 3), (1, 2, 2, 2)):
        for b in range(blocks):
            s = stride if b == 0 else 1
            if b == 0:
                shortcut, i = conv_bn(h, i, s), i + 1
            else:
                shortcut = h
            y = tf.nn.relu(conv_bn(h, i, 1))
            y = tf.nn.relu(conv_bn(y, i + 1, s))
            h, i = tf.nn.relu(conv_bn(y, i + 2, 1) + shortcut), i + 3
    h = tf.reduce_mean(h, [1, 2])
    return (h @ w["resnet_model/dense/kernel"] + w["resnet_model/dense/bias"]).numpy()


def test_graph_equals_independent_forward(tf, weights):
    x = _random((67, 91), count=2, seed=3)  # odd, non-square: exercises the asymmetric padding
    graph = rn.frozen_graph_def(weights, image_size=(67, 91))
    ours = rn.run_graph(graph, x)
    ref = _independent_forward(tf, weights, x)
    assert 0.3 < ref.std() < 30
    assert float(np.abs(ours - ref).max()) <= 1e-4 * max(1.0, float(np.abs(ref).max()) / 10)


def test_bad_weights_and_sizes(tf, weights):
    with pytest.raises(InputShapeError, match="at least 32"):
        rn.frozen_graph_def(weights, image_size=31)
    with pytest.raises(InputShapeError):
        rn.frozen_graph_def(weights, image_size=(224, 16))
    missing = {k: v for k, v in weights.items() if k != "resnet_model/batch_normalization_24/moving_variance"}
    with pytest.raises(FormatError, match="lack"):
        rn.frozen_graph_def(missing)
    with pytest.raises(FormatError, match="unexpected"):
        rn.frozen_graph_def({**weights, "resnet_model/conv2d_53/kernel": np.zeros((1, 1, 1, 1), np.float32)})
    wrong = dict(weights)
    wrong["resnet_model/conv2d_30/kernel"] = np.zeros((3, 3, 256, 1024), np.float32)
    with pytest.raises(TensorShapeError, match=r"conv2d_30/kernel.*\(1, 1, 256, 1024\)"):
        rn.frozen_graph_def(wrong)
