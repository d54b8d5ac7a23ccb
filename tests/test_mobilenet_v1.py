"""MobileNet-v1 (MLPerf): both ports against TensorFlow executing the upstream graph.

The reference is always TensorFlow running a graph in the upstream format: the
stand-in release's frozen graph (zoo.standins writes it in the release's exact
format), or, where ../shared is present, the real upstream eval graph with the
stand-in weights assigned. Tolerance: max |logit diff| <= 1e-4 (fp32; relative
to the logits' scale beyond 10), and the same top-1 (tests/parity.py).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import zoo
from parity import ROOT, assert_logits_match, imagenet_val_bgr, require_shared, skimage_photos_bgr, torch_logits
from zoo.errors import FormatError, InputShapeError, TensorShapeError

FROZEN = "mobilenet_v1_1.0_224_frozen.pb"


@pytest.fixture(scope="module")
def upstream(tf):
    from zoo.standins import mobilenet_v1

    return mobilenet_v1


@pytest.fixture(scope="module")
def release(upstream, standins):
    tgz = standins.mobilenet_release()
    variables = upstream.make_variables(0)
    with tarfile.open(tgz) as tar:
        frozen_bytes = tar.extractfile(FROZEN).read()
    return SimpleNamespace(tgz=tgz, variables=variables, weights=upstream.model_variables(variables), frozen=frozen_bytes)


@pytest.fixture(scope="module")
def converted(release, standins) -> Path:
    return standins.converted("mobilenet_v1")


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """chelsea, coffee, astronaut, rocket: MLPerf pre_process_mobilenet, NHWC."""
    from zoo.preprocessing import preprocess_mobilenet

    return np.stack([preprocess_mobilenet(image) for image in skimage_photos_bgr()])


def _reference(tf, upstream, release, images: np.ndarray) -> np.ndarray:
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(release.frozen)
    return upstream.run_graph(graph_def, images)


def _inputs(photos: np.ndarray, size: int = 224) -> np.ndarray:
    rng = np.random.default_rng(1)
    noise = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    return np.concatenate([photos, noise]) if size == 224 else noise


def test_torch_port_matches_upstream_graph(tf, upstream, release, converted, photos):
    x = _inputs(photos)
    ref = _reference(tf, upstream, release, x)
    assert 0.3 < ref.std() < 30, "stand-in logits should be of realistic scale"
    assert_logits_match(torch_logits(zoo.mobilenet_v1_tf_compat(weights=converted), x), ref, "torch")


def test_keras_port_matches_upstream_graph(tf, upstream, release, converted, photos):
    x = _inputs(photos)
    model = zoo.keras.mobilenet_v1_tf_compat(weights=converted)
    assert_logits_match(np.asarray(model(x, training=False)), _reference(tf, upstream, release, x), "keras")


def test_folded_keras_port_matches_upstream_graph(tf, upstream, release, converted, photos):
    from zoo.keras.fold import count_batch_norms, fold_batch_norms

    model = zoo.keras.mobilenet_v1_tf_compat(weights=converted)
    before = [w.copy() for w in model.get_weights()]
    folded = fold_batch_norms(model)
    # 27 conv -> BN pairs (stem, 13 depthwise, 13 pointwise), depthwise kernels included.
    assert count_batch_norms(model) == 27 and count_batch_norms(folded) == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "the source model was changed"
    x = _inputs(photos)
    # Tolerance as for the unfolded port: max |logit diff| <= 1e-4 against TF running the frozen graph.
    assert_logits_match(np.asarray(folded(x, training=False)), _reference(tf, upstream, release, x), "keras folded")
    # An odd size keeps the depthwise and strided convolutions' SAME padding after the fold.
    x = _inputs(None, 97)
    ref = upstream.run_graph(upstream.frozen_graph_def(release.weights, image_size=97, global_pool=True), x)
    assert_logits_match(np.asarray(folded(x, training=False)), ref, "keras folded 97")


@pytest.mark.parametrize("size", [32, 193, 225])
def test_other_sizes_match_global_pool_graph(tf, upstream, release, converted, size):
    x = _inputs(None, size)
    ref = upstream.run_graph(upstream.frozen_graph_def(release.weights, image_size=size, global_pool=True), x)
    assert_logits_match(torch_logits(zoo.mobilenet_v1_tf_compat(weights=converted), x), ref, f"torch {size}")
    keras_model = zoo.keras.mobilenet_v1_tf_compat(weights=converted)
    assert_logits_match(np.asarray(keras_model(x, training=False)), ref, f"keras {size}")


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
    x = np.random.default_rng(2).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    ref = upstream.run_graph(upstream.frozen_graph_def(ema_weights), x)
    assert_logits_match(torch_logits(zoo.mobilenet_v1_tf_compat(weights=ema_file), x), ref, "torch EMA")
    raw_ref = _reference(tf, upstream, release, x)
    assert np.abs(ref - raw_ref).max() > 1e-3, "EMA and raw weights must give different logits"


def test_conversion_metadata_and_determinism(release, converted, tmp_path):
    from safetensors import safe_open

    from zoo.convert.mobilenet_v1 import convert

    with safe_open(str(converted), "np") as f:
        meta = f.metadata()
    assert meta["source_file"] == "mobilenet_v1_1.0_224.tgz"
    assert meta["source_sha256"] == hashlib.sha256(release.tgz.read_bytes()).hexdigest()
    assert meta["variables"] == "frozen graph constants"
    again = convert(release.tgz, tmp_path / "again.safetensors")
    assert again.read_bytes() == converted.read_bytes()


def test_convert_script(release, tmp_path):
    out = tmp_path / "cli.safetensors"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "convert.py"), "mobilenet_v1", "--source", str(release.tgz), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    assert zoo.mobilenet_v1_tf_compat(weights=out) is not None


# --- errors: clear, and no output file -----------------------------------------


def _write_checkpoint(tf, prefix: Path, variables: dict) -> None:
    graph = tf.Graph()
    with graph.as_default():
        tf_vars = {name: tf.compat.v1.Variable(value, name=name) for name, value in variables.items()}
        saver = tf.compat.v1.train.Saver(var_list=tf_vars)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False)


def _convert_fails(source, out: Path, error, match: str, **kwargs) -> None:
    from zoo.convert.mobilenet_v1 import convert

    with pytest.raises(error, match=match):
        convert(source, out, **kwargs)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")], "a temporary file was left"


def test_truncated_pb(release, tmp_path):
    pb = tmp_path / "truncated.pb"
    pb.write_bytes(release.frozen[: len(release.frozen) // 2])
    _convert_fails(pb, tmp_path / "out.safetensors", FormatError, "truncated.pb: not a valid GraphDef")


def test_checkpoint_missing_a_variable(tf, release, tmp_path):
    variables = dict(release.weights)
    del variables["MobilenetV1/Conv2d_7_depthwise/depthwise_weights"]
    _write_checkpoint(tf, tmp_path / "ckpt", variables)
    _convert_fails(tmp_path / "ckpt", tmp_path / "out.safetensors", FormatError, "missing tensor MobilenetV1/Conv2d_7_depthwise/depthwise_weights")


def test_checkpoint_tensor_of_wrong_shape(tf, release, tmp_path):
    variables = dict(release.weights)
    variables["MobilenetV1/Conv2d_3_pointwise/weights"] = np.zeros((1, 1, 128, 64), np.float32)
    _write_checkpoint(tf, tmp_path / "ckpt", variables)
    _convert_fails(
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
    _convert_fails(evil, tmp_path / "out.safetensors", FormatError, "leaves the extraction folder")
    assert not (tmp_path.parent / FROZEN).exists()


def test_wrong_weights_file_and_layout(tmp_path, converted):
    with pytest.raises(FormatError, match="not found"):
        zoo.mobilenet_v1_tf_compat(weights=tmp_path / "absent.safetensors")
    with pytest.raises(InputShapeError, match="NHWC"):
        zoo.mobilenet_v1_tf_compat(weights=converted)(torch.zeros(1, 224, 224, 3))


def test_registry_lists_the_model():
    entry = zoo.get_model_entry("mobilenet_v1")
    assert "mobilenet_v1" in zoo.list_models()
    assert entry.label_offset == -1 and entry.reference_metric["top1"] == 71.676


# --- real upstream files (../shared) ----------------------------------------------


@pytest.fixture(scope="module")
def shared():
    return require_shared()


def test_real_eval_graph_on_real_imagenet_images(tf, upstream, release, converted, shared):
    from zoo.preprocessing import preprocess_mobilenet

    x = np.stack([preprocess_mobilenet(image) for image in imagenet_val_bgr(shared)])
    pbtxt = shared / "upstream" / "mobilenet_v1_1.0_224" / "mobilenet_v1_1.0_224_eval.pbtxt"
    ref = np.concatenate(
        [upstream.run_eval_graph(pbtxt, release.weights, x[i : i + 32]) for i in range(0, len(x), 32)]
    )
    assert_logits_match(torch_logits(zoo.mobilenet_v1_tf_compat(weights=converted), x), ref, "torch vs real eval graph")
    keras_model = zoo.keras.mobilenet_v1_tf_compat(weights=converted)
    assert_logits_match(
        np.asarray(keras_model.predict(x, batch_size=32, verbose=0)), ref, "keras vs real eval graph"
    )
