"""The MobileNet-v1 stand-in release against the real upstream files (when ../shared is here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.standins import mobilenet_v1 as mv1

REPO = Path(__file__).resolve().parents[1]
ENTRIES = "ckpt_index_entries.json"
EVAL_PBTXT = "mobilenet_v1_1.0_224_eval.pbtxt"
DT_ENUM = {"float32": 1, "int64": 9}  # TF DataType enum values as the index stores them
FREEZING_MACHINERY = {"VariableV2", "Assign", "TruncatedNormal", "Fill", "Mul", "Add"}


def _shared() -> Path | None:
    data = os.environ.get("ZOO_DATA_DIR")
    root = Path(data).parent if data else REPO.parent / "shared"
    return root if (root / "upstream" / "mobilenet_v1_1.0_224" / ENTRIES).is_file() else None


def _upstream(name: str) -> Path:
    shared = _shared()
    if shared is None:
        pytest.skip("the real upstream files (../shared/upstream) are not here")
    return shared / "upstream" / "mobilenet_v1_1.0_224" / name


def _images(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def _extract(tar: tarfile.TarFile, out: Path) -> None:
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    tar.extractall(out, **kwargs)


@pytest.fixture(scope="module")
def release(tf, standins, tmp_path_factory) -> Path:
    """The stand-in tgz (written once per session), extracted."""
    tgz = standins.source("mobilenet_v1")
    out = tmp_path_factory.mktemp("release") / "x"
    with tarfile.open(tgz) as tar:
        _extract(tar, out)
    return out


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return mv1.model_variables(mv1.make_variables(0))


def test_import_does_not_load_tensorflow():
    code = "import sys, zoo.standins.mobilenet_v1; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tgz_has_exactly_the_seven_members(standins):
    tgz = standins.source("mobilenet_v1")
    assert tgz.name == mv1.TGZ_NAME
    with tarfile.open(tgz) as tar:
        names = tar.getnames()
    assert sorted(names) == sorted(mv1.RELEASE_MEMBERS)
    assert len(names) == 7
    assert [p.name for p in tgz.parent.iterdir()] == [mv1.TGZ_NAME]  # no half-written leftovers


def test_checkpoint_variables_and_slots(tf, release):
    reader = tf.train.load_checkpoint(str(release / "mobilenet_v1_1.0_224.ckpt"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    assert len(shapes) == 443
    assert dtypes["global_step"] == tf.int64 and shapes["global_step"] == []
    model = [n for n in shapes if n.startswith("MobilenetV1/") and n.split("/")[-1] in
             ("weights", "depthwise_weights", "biases", "gamma", "beta", "moving_mean", "moving_variance")]
    assert len(model) == 137
    for name in model:  # EMA copies exist and differ from the raw values
        raw, ema = reader.get_tensor(name), reader.get_tensor(f"{name}/ExponentialMovingAverage")
        assert raw.shape == ema.shape and not np.array_equal(raw, ema)
        np.testing.assert_allclose(ema, raw, rtol=0.1, atol=1e-6)
    assert sum(n.endswith("/RMSProp_1") for n in shapes) == 83
    assert all((reader.get_tensor(n) > 0).all() for n in shapes if n.endswith("/RMSProp"))
    # The checkpoint holds exactly what make_variables(0) gives.
    expected = mv1.make_variables(0)
    assert set(expected) == set(shapes)
    for name, value in expected.items():
        np.testing.assert_array_equal(reader.get_tensor(name), value, err_msg=name)


def test_checkpoint_matches_real_index(tf, release):
    real = json.loads(_upstream(ENTRIES).read_text())
    reader = tf.train.load_checkpoint(str(release / "mobilenet_v1_1.0_224.ckpt"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    mine = {n: (DT_ENUM[dtypes[n].name], list(shapes[n])) for n in shapes}
    assert mine == {n: (e["dtype"], e["shape"]) for n, e in real.items()}
    # Same tensors in the same (sorted) order -> the data file ends where the real one does.
    end = max(e["offset"] + e["size"] for e in real.values())
    assert (release / "mobilenet_v1_1.0_224.ckpt.data-00000-of-00001").stat().st_size == end
    assert (release / "mobilenet_v1_1.0_224.ckpt.index").stat().st_size == _upstream(
        "mobilenet_v1_1.0_224.ckpt.index").stat().st_size


def test_meta_graph_restores_checkpoint(tf, release):
    prefix = str(release / "mobilenet_v1_1.0_224.ckpt")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        saver = tf.compat.v1.train.import_meta_graph(prefix + ".meta")
        saver.restore(sess, prefix)
        step = sess.run("global_step:0")
        assert len(tf.compat.v1.global_variables()) == 443
        assert len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES)) == 137
        assert len(tf.compat.v1.trainable_variables()) == 83
    assert step == mv1.make_variables(0)["global_step"]


def test_eval_pbtxt_is_the_real_file(release):
    real = _upstream(EVAL_PBTXT)
    assert (release / EVAL_PBTXT).read_bytes() == real.read_bytes()


def test_info_txt(release):
    text = (release / "mobilenet_v1_1.0_224_info.txt").read_text()
    assert text.splitlines() == ["Model: mobilenet_v1_1.0_224", "Input: input",
                                 "Output: MobilenetV1/Predictions/Reshape_1"]
    if _shared():
        assert text == _upstream("mobilenet_v1_1.0_224_info.txt").read_text()


def _inference_nodes(graph_def):
    """Nodes on the path from the input to the output (what freezing keeps)."""
    by_name = {n.name: n for n in graph_def.node}
    keep, todo = set(), [mv1.OUTPUT_NODE]
    while todo:
        name = todo.pop().split(":")[0].lstrip("^")
        if name not in keep:
            keep.add(name)
            todo.extend(by_name[name].input)
    return {n: by_name[n] for n in keep}


def test_frozen_graph_facts(tf, release, weights):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((release / "mobilenet_v1_1.0_224_frozen.pb").read_bytes())
    nodes = {n.name: n for n in graph_def.node}
    assert set(_inference_nodes(graph_def)) == set(nodes)  # nothing left over from training
    assert nodes["input"].op == "Placeholder"
    assert [d.size for d in nodes["input"].attr["shape"].shape.dim] == [-1, 224, 224, 3]
    ops = [n.op for n in graph_def.node]
    assert ops.count("Conv2D") == 15 and ops.count("DepthwiseConv2dNative") == 13
    assert ops.count("FusedBatchNorm") == 27 and ops.count("Relu6") == 27 and ops.count("Const") == 138
    for n in graph_def.node:
        if n.op in ("Conv2D", "DepthwiseConv2dNative"):
            assert n.attr["padding"].s == b"SAME"
            strided = [f"/Conv2d_{i}_depthwise/" for i in (2, 4, 6, 12)] + ["/Conv2d_0/"]
            stride = 2 if any(s in n.name for s in strided) else 1
            assert list(n.attr["strides"].list.i) == [1, stride, stride, 1], n.name
        if n.op == "FusedBatchNorm":
            assert n.attr["epsilon"].f == pytest.approx(0.001) and not n.attr["is_training"].b
    pool = nodes["MobilenetV1/Logits/AvgPool_1a/AvgPool"]
    assert list(pool.attr["ksize"].list.i) == [1, 7, 7, 1] and pool.attr["padding"].s == b"VALID"
    assert nodes[mv1.LOGITS_NODE].op == "Squeeze" and nodes["MobilenetV1/Predictions/Softmax"].op == "Softmax"
    # The constants are the raw model variables of the checkpoint.
    for name, value in weights.items():
        np.testing.assert_array_equal(tf.make_ndarray(nodes[name].attr["value"].tensor), value)
        assert nodes[f"{name}/read"].op == "Identity"


def test_frozen_graph_covers_real_eval_graph(tf, weights):
    real = _inference_nodes(mv1.read_pbtxt(_upstream(EVAL_PBTXT)))
    mine = {n.name: n for n in mv1.frozen_graph_def(weights).node}
    for name, node in real.items():
        if node.op in FREEZING_MACHINERY:
            assert mine[name].op == "Const" if node.op == "VariableV2" else name not in mine
            continue
        assert mine[name].op == node.op, name
        assert list(mine[name].input) == list(node.input), name
        for key in ("strides", "padding", "epsilon", "data_format", "ksize", "squeeze_dims", "dilations"):
            assert (key in mine[name].attr) == (key in node.attr), (name, key)
            if key in node.attr:
                assert mine[name].attr[key] == node.attr[key], (name, key)


def test_frozen_graph_is_what_tensorflow_freezing_gives(tf, weights):
    """convert_variables_to_constants on the eval graph (the real one when present) == ours."""
    eval_def = mv1.read_pbtxt(_upstream(EVAL_PBTXT)) if _shared() else mv1.eval_graph_def()
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
        tf.import_graph_def(eval_def, name="")
        sess.run([f"{n}/Assign" for n in weights],
                 {graph.get_operation_by_name(f"{n}/Assign").inputs[1]: v for n, v in weights.items()})
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            sess, graph.as_graph_def(), [mv1.OUTPUT_NODE])
    mine = mv1.frozen_graph_def(weights)
    assert [n.name for n in frozen.node] == [n.name for n in mine.node]
    for theirs, ours in zip(frozen.node, mine.node):
        assert (theirs.op, list(theirs.input)) == (ours.op, list(ours.input)), ours.name
        for key, value in ours.attr.items():  # TF 2.21 adds default attrs the 2018 graph lacks
            assert theirs.attr[key] == value, (ours.name, key)


def test_frozen_graph_equals_real_eval_graph(tf, weights):
    images = _images(3, seed=1)
    ours = mv1.run_graph(mv1.frozen_graph_def(weights), images)
    real = mv1.run_eval_graph(_upstream(EVAL_PBTXT), weights, images)
    assert ours.shape == (3, 1001)
    assert np.abs(ours - real).max() <= 1e-5


def _real_images(tf, n: int) -> np.ndarray | None:
    shared = _shared()
    files = sorted((shared / "data" / "imagenet" / "val").glob("*.JPEG"))[:n] if shared else []
    if not files:
        return None
    out = []
    for path in files:  # central crop 87.5%, bilinear resize, scale to [-1, 1]
        image = tf.image.central_crop(tf.io.decode_jpeg(path.read_bytes(), channels=3), 0.875)
        image = tf.image.resize(tf.cast(image, tf.float32), [224, 224])
        out.append(image.numpy() / 127.5 - 1.0)
    return np.stack(out).astype(np.float32)


def test_activation_scale(tf, weights):
    graph_def = mv1.frozen_graph_def(weights)
    relus = [n.name for n in graph_def.node if n.op == "Relu6"]
    real = _real_images(tf, 2)
    batches = [_images(2, seed=2)] + ([real] if real is not None else [])
    for images in batches:
        with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
            tf.import_graph_def(graph_def, name="")
            *acts, logits = sess.run([f"{r}:0" for r in relus] + [f"{mv1.LOGITS_NODE}:0"], {"input:0": images})
        assert 0.3 <= logits.std() <= 30
        for name, act in zip(relus, acts):
            assert 0.01 < (act > 0).mean() and (act >= 6).mean() < 0.5, name


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_matches_frozen_graph(tf, release, weights):
    interpreter = tf.lite.Interpreter(model_path=str(release / "mobilenet_v1_1.0_224.tflite"))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == [1, 224, 224, 3] and inp["dtype"] == np.float32
    image = _images(1, seed=3)
    interpreter.set_tensor(inp["index"], image)
    interpreter.invoke()
    expected = mv1.run_graph(mv1.frozen_graph_def(weights), image, mv1.OUTPUT_NODE)
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), expected, atol=1e-5)


def test_release_is_deterministic(tf, release, tmp_path):
    again = mv1.write_release(tmp_path, seed=0).parent / "x"
    with tarfile.open(tmp_path / mv1.TGZ_NAME) as tar:
        _extract(tar, again)
    for member in ("mobilenet_v1_1.0_224_frozen.pb", "mobilenet_v1_1.0_224.ckpt.data-00000-of-00001",
                   "mobilenet_v1_1.0_224.ckpt.index", "mobilenet_v1_1.0_224_eval.pbtxt"):
        assert (again / member).read_bytes() == (release / member).read_bytes(), member
    a, b = mv1.make_variables(0), mv1.make_variables(1)
    assert all(not np.array_equal(a[n], b[n]) for n in a)
    pb = [mv1.frozen_graph_def(mv1.model_variables(v)).SerializeToString(deterministic=True) for v in (a, b)]
    assert pb[0] == (release / "mobilenet_v1_1.0_224_frozen.pb").read_bytes() and pb[0] != pb[1]


def test_global_pool_and_other_sizes(tf, weights):
    images = _images(2, seed=4)
    avg = mv1.run_graph(mv1.frozen_graph_def(weights), images)
    pooled_def = mv1.frozen_graph_def(weights, global_pool=True)
    pool = {n.name: n for n in pooled_def.node}["MobilenetV1/Logits/global_pool"]
    assert pool.op == "Mean" and pool.attr["keep_dims"].b
    assert np.abs(mv1.run_graph(pooled_def, images) - avg).max() <= 1e-5
    small = mv1.run_graph(mv1.frozen_graph_def(weights, image_size=193, global_pool=True), _images(2, 193))
    assert small.shape == (2, 1001) and np.isfinite(small).all()
    with pytest.raises(ZooError):
        mv1.frozen_graph_def(weights, image_size=193)
