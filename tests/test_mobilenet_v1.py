"""MobileNet-v1 (MLPerf): both ports against TensorFlow executing the upstream graph.

The reference is always TensorFlow running a graph in the upstream format: the
stand-in release's frozen graph (zoo.standins writes it in the release's exact
format), or, where ../shared is present, the real upstream eval graph with the
stand-in weights assigned. The bar is the registry entry's tolerance and the
same top-1 (tests/parity.py). The tests every model shares (224x224 parity, the
converter's metadata, determinism and script, truncated files) are in
tests/test_models.py.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import zoo
from parity import assert_convert_fails, assert_matches_reference, imagenet_val_bgr, require_shared, torch_logits
from zoo.errors import FormatError, TensorShapeError

MODEL = "mobilenet_v1"
ENTRY = zoo.get_model_entry(MODEL)
FROZEN = ENTRY.upstream_graph.frozen_member


@pytest.fixture(scope="module")
def upstream(tf):
    from zoo.standins import mobilenet_v1

    return mobilenet_v1


@pytest.fixture(scope="module")
def release(upstream, standins):
    variables = upstream.make_variables(0)
    return SimpleNamespace(tgz=standins.source(MODEL), variables=variables, weights=upstream.model_variables(variables),
                           frozen=standins.frozen_graph(MODEL).read_bytes())


@pytest.fixture(scope="module")
def converted(release, standins) -> Path:
    return standins.converted(MODEL)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """chelsea, coffee, astronaut, rocket: MLPerf pre_process_mobilenet, NHWC."""
    return ENTRY.load("demo_inputs")(ENTRY)


def _reference(upstream, release, images: np.ndarray) -> np.ndarray:
    return upstream.reference_forward(release.tgz, images)


def _inputs(photos: np.ndarray | None, size: int = 224, seed: int = 1) -> np.ndarray:
    noise = ENTRY.input.example(2, (size, size), seed=seed, framework="keras")
    return np.concatenate([photos, noise]) if size == 224 else noise


def test_folded_keras_port_matches_upstream_graph(upstream, release, converted, photos):
    from zoo.keras.fold import count_batch_norms, fold_batch_norms

    model = zoo.keras.mobilenet_v1_tf_compat(weights=converted)
    before = [w.copy() for w in model.get_weights()]
    folded = fold_batch_norms(model)
    # 27 conv -> BN pairs (stem, 13 depthwise, 13 pointwise), depthwise kernels included.
    assert count_batch_norms(model) == 27 and count_batch_norms(folded) == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "the source model was changed"
    x = _inputs(photos)
    # The same bar as for the unfolded port, against TF running the frozen graph.
    assert_matches_reference(MODEL, np.asarray(folded(x, training=False)), _reference(upstream, release, x), "keras folded")
    # An odd size keeps the depthwise and strided convolutions' SAME padding after the fold.
    x = _inputs(None, 97)
    ref = upstream.run_graph(upstream.frozen_graph_def(release.weights, image_size=97, global_pool=True), x)
    assert_matches_reference(MODEL, np.asarray(folded(x, training=False)), ref, "keras folded 97")


@pytest.mark.parametrize("size", [32, 193, 225])
def test_other_sizes_match_global_pool_graph(tf, upstream, release, converted, size):
    x = _inputs(None, size)
    ref = upstream.run_graph(upstream.frozen_graph_def(release.weights, image_size=size, global_pool=True), x)
    assert_matches_reference(MODEL, torch_logits(zoo.mobilenet_v1_tf_compat(weights=converted), x), ref, f"torch {size}")
    keras_model = zoo.keras.mobilenet_v1_tf_compat(weights=converted)
    assert_matches_reference(MODEL, np.asarray(keras_model(x, training=False)), ref, f"keras {size}")


def _extract_checkpoint(tgz: Path, dest: Path) -> Path:
    with tarfile.open(tgz) as tar:
        for suffix in (".index", ".data-00000-of-00001"):
            member = tar.getmember(f"mobilenet_v1_1.0_224.ckpt{suffix}")
            (dest / member.name).write_bytes(tar.extractfile(member).read())
    return dest / "mobilenet_v1_1.0_224.ckpt"


def test_checkpoint_sources(tf, upstream, release, converted, tmp_path):
    from safetensors.numpy import load_file

    from zoo.convert.mobilenet_v1 import convert

    prefix = _extract_checkpoint(release.tgz, tmp_path)
    raw = convert(prefix, tmp_path / "raw.safetensors")
    frozen, from_raw = load_file(str(converted)), load_file(str(raw))
    assert frozen.keys() == from_raw.keys()
    assert all(np.array_equal(frozen[k], from_raw[k]) for k in frozen)

    # Moving averages: the ports with EMA weights equal TF's graph frozen from the EMA values.
    ema_file = convert(prefix, tmp_path / "ema.safetensors", use_moving_averages=True)
    ema_weights = {name: release.variables[f"{name}/ExponentialMovingAverage"] for name in release.weights}
    x = ENTRY.input.example(2, seed=2, framework="keras")
    ref = upstream.run_graph(upstream.frozen_graph_def(ema_weights), x)
    assert_matches_reference(MODEL, torch_logits(zoo.mobilenet_v1_tf_compat(weights=ema_file), x), ref, "torch EMA")
    raw_ref = _reference(upstream, release, x)
    assert np.abs(ref - raw_ref).max() > 1e-3, "EMA and raw weights must give different logits"


def test_release_converts_from_the_frozen_graph_constants(converted):
    from safetensors import safe_open

    with safe_open(str(converted), "np") as f:
        assert f.metadata()["variables"] == "frozen graph constants"


# --- errors: clear, and no output file -----------------------------------------


def _write_checkpoint(tf, prefix: Path, variables: dict) -> None:
    graph = tf.Graph()
    with graph.as_default():
        tf_vars = {name: tf.compat.v1.Variable(value, name=name) for name, value in variables.items()}
        saver = tf.compat.v1.train.Saver(var_list=tf_vars)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False)


def test_checkpoint_missing_a_variable(tf, release, tmp_path):
    variables = dict(release.weights)
    del variables["MobilenetV1/Conv2d_7_depthwise/depthwise_weights"]
    _write_checkpoint(tf, tmp_path / "ckpt", variables)
    assert_convert_fails(MODEL, tmp_path / "ckpt", tmp_path / "out.safetensors", FormatError, "missing tensor MobilenetV1/Conv2d_7_depthwise/depthwise_weights")


def test_checkpoint_tensor_of_wrong_shape(tf, release, tmp_path):
    variables = dict(release.weights)
    variables["MobilenetV1/Conv2d_3_pointwise/weights"] = np.zeros((1, 1, 128, 64), np.float32)
    _write_checkpoint(tf, tmp_path / "ckpt", variables)
    assert_convert_fails(
        MODEL,
        tmp_path / "ckpt",
        tmp_path / "out.safetensors",
        TensorShapeError,
        r"MobilenetV1/Conv2d_3_pointwise/weights has shape \(1, 1, 128, 64\), expected \(1, 1, 128, 128\)",
    )


def test_tgz_with_path_traversal_member(release, tmp_path):
    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../" + FROZEN)
        info.size = len(release.frozen)
        import io

        tar.addfile(info, io.BytesIO(release.frozen))
    assert_convert_fails(MODEL, evil, tmp_path / "out.safetensors", FormatError, "leaves the extraction folder")
    assert not (tmp_path.parent / FROZEN).exists()


def test_registry_entry():
    assert MODEL in zoo.list_models()
    assert ENTRY.label_offset == -1 and ENTRY.reference_metric["top1"] == 71.676


# --- real upstream files (../shared) ----------------------------------------------


@pytest.fixture(scope="module")
def shared():
    return require_shared()


def test_real_eval_graph_on_real_imagenet_images(tf, upstream, release, converted, shared):
    preprocess = ENTRY.load("preprocessing")
    x = np.stack([preprocess(image) for image in imagenet_val_bgr(shared)])
    pbtxt = shared / "upstream" / "mobilenet_v1_1.0_224" / "mobilenet_v1_1.0_224_eval.pbtxt"
    ref = np.concatenate(
        [upstream.run_eval_graph(pbtxt, release.weights, x[i : i + 32]) for i in range(0, len(x), 32)]
    )
    assert_matches_reference(MODEL, torch_logits(zoo.mobilenet_v1_tf_compat(weights=converted), x), ref, "torch vs real eval graph")
    keras_model = zoo.keras.mobilenet_v1_tf_compat(weights=converted)
    assert_matches_reference(MODEL, 
        np.asarray(keras_model.predict(x, batch_size=32, verbose=0)), ref, "keras vs real eval graph"
    )
