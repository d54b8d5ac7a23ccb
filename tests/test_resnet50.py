"""ResNet-50 v1.5 (MLPerf): both ports against TensorFlow executing the upstream frozen graph.

The reference is TensorFlow running the stand-in ``resnet50_v1.pb`` (written by
zoo.standins.resnet50 in the upstream format: Pad + VALID for strided
convolutions, SAME elsewhere, FusedBatchNorm epsilon 1.001e-5, SAME max pool)
at each tested size. Tolerance: max |logit diff| <= 1e-4, relative to the
logits' scale beyond 10, and the same top-1 (tests/parity.py).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import zoo
from parity import ROOT, assert_logits_match, imagenet_val_bgr, require_shared, skimage_photos_bgr, torch_logits
from zoo.errors import FormatError, InputShapeError, TensorShapeError


@pytest.fixture(scope="module")
def upstream(tf):
    from zoo.standins import resnet50

    return resnet50


@pytest.fixture(scope="module")
def release(upstream, standins):
    return SimpleNamespace(pb=standins.resnet50_pb(), weights=upstream.make_weights(0))


@pytest.fixture(scope="module")
def converted(release, standins):
    return standins.converted("resnet50")


@pytest.fixture(scope="module")
def models(converted):
    return zoo.resnet50_tf_compat(weights=converted), zoo.keras.resnet50_tf_compat(weights=converted)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """chelsea, coffee, astronaut, rocket: MLPerf pre_process_vgg, NHWC."""
    from zoo.preprocessing import preprocess_vgg

    return np.stack([preprocess_vgg(image) for image in skimage_photos_bgr()])


def _random(shape: tuple[int, int], count: int = 2, seed: int = 1) -> np.ndarray:
    # The range of MLPerf-preprocessed pixels: [0, 255] minus the RGB means.
    return np.random.default_rng(seed).uniform(-124, 152, (count, *shape, 3)).astype(np.float32)


def _check_both(upstream, release, models, x: np.ndarray, size, what: str) -> None:
    graph = upstream.frozen_graph_def(release.weights, image_size=size)
    ref = upstream.run_graph(graph, x)
    assert 0.3 < ref.std() < 30, "stand-in logits should be of realistic scale"
    torch_model, keras_model = models
    assert_logits_match(torch_logits(torch_model, x), ref, f"torch {what}")
    assert_logits_match(np.asarray(keras_model(x, training=False)), ref, f"keras {what}")


def test_ports_match_upstream_graph_on_photos_and_random(tf, upstream, release, models, photos):
    x = np.concatenate([photos, _random((224, 224))])
    # The frozen file itself, as TensorFlow reads it, is the reference at 224.
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(release.pb.read_bytes())
    ref = upstream.run_graph(graph, x)
    torch_model, keras_model = models
    assert_logits_match(torch_logits(torch_model, x), ref, "torch 224")
    assert_logits_match(np.asarray(keras_model(x, training=False)), ref, "keras 224")


@pytest.mark.parametrize("size", [(225, 225), (193, 257), (32, 33)], ids=str)
def test_ports_match_upstream_graph_at_other_sizes(upstream, release, models, size):
    _check_both(upstream, release, models, _random(size), size, f"{size}")


def test_folded_keras_port_matches_upstream_graph(tf, upstream, release, models, photos):
    from zoo.keras.fold import count_batch_norms, fold_batch_norms

    keras_model = models[1]
    folded = fold_batch_norms(keras_model)
    # 53 conv -> BN pairs, the four projection shortcuts (a branch of the graph) included.
    assert count_batch_norms(keras_model) == 53 and count_batch_norms(folded) == 0
    assert folded.get_layer("layer1-0-downsample-0").use_bias
    x = np.concatenate([photos, _random((224, 224))])
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(release.pb.read_bytes())
    # Tolerance as for the unfolded port: max |logit diff| <= 1e-4 (relative beyond 10).
    assert_logits_match(np.asarray(folded(x, training=False)), upstream.run_graph(graph, x), "keras folded 224")


def test_fold_batch_norms_rejects_a_subclassed_model(tf):
    import keras

    from zoo.keras.fold import fold_batch_norms

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="functional keras.Model"):
        fold_batch_norms(Subclassed())


def test_conversion_metadata_and_determinism(release, converted, tmp_path):
    from safetensors import safe_open

    from zoo.convert.resnet50 import convert

    with safe_open(str(converted), "np") as f:
        meta = f.metadata()
    assert meta["source_file"] == "resnet50_v1.pb"
    assert meta["source_sha256"] == hashlib.sha256(release.pb.read_bytes()).hexdigest()
    again = convert(release.pb, tmp_path / "again.safetensors")
    assert again.read_bytes() == converted.read_bytes()


def test_convert_script(release, tmp_path):
    out = tmp_path / "cli.safetensors"
    command = [sys.executable, str(ROOT / "scripts" / "convert.py"), "resnet50", "--source", str(release.pb)]
    result = subprocess.run(command + ["--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert zoo.resnet50_tf_compat(weights=out) is not None


def _convert_fails(source, out, error, match: str) -> None:
    from zoo.convert.resnet50 import convert

    with pytest.raises(error, match=match):
        convert(source, out)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")], "a temporary file was left"


def test_truncated_pb(release, tmp_path):
    data = release.pb.read_bytes()
    bad = tmp_path / "truncated.pb"
    bad.write_bytes(data[: len(data) * 2 // 3])
    _convert_fails(bad, tmp_path / "out.safetensors", FormatError, "truncated.pb: not a valid GraphDef")


def test_missing_and_misshapen_tensors(tf, upstream, release, tmp_path):
    # Bad files made by editing the stand-in graph's nodes (a Const removed, a Const reshaped).
    graph = upstream.frozen_graph_def(release.weights)
    missing, wrong = tf.compat.v1.GraphDef(), tf.compat.v1.GraphDef()
    missing.CopyFrom(graph)
    wrong.CopyFrom(graph)
    kept = [n for n in missing.node if n.name != "resnet_model/batch_normalization_24/moving_variance"]
    del missing.node[:]
    missing.node.extend(kept)
    (tmp_path / "missing.pb").write_bytes(missing.SerializeToString())
    _convert_fails(
        tmp_path / "missing.pb",
        tmp_path / "out.safetensors",
        FormatError,
        "missing tensor resnet_model/batch_normalization_24/moving_variance",
    )
    for node in wrong.node:
        if node.name == "resnet_model/conv2d_29/kernel":
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.zeros((3, 3, 256, 128), np.float32)))
    (tmp_path / "wrong.pb").write_bytes(wrong.SerializeToString())
    _convert_fails(
        tmp_path / "wrong.pb",
        tmp_path / "out.safetensors",
        TensorShapeError,
        r"resnet_model/conv2d_29/kernel has shape \(3, 3, 256, 128\), expected \(3, 3, 256, 256\)",
    )


def test_input_layout_and_registry(converted):
    with pytest.raises(InputShapeError, match="NHWC"):
        zoo.resnet50_tf_compat(weights=converted)(torch.zeros(1, 224, 224, 3))
    entry = zoo.get_model_entry("resnet50")
    assert entry.label_offset == -1 and entry.reference_metric["top1"] == 76.456


def test_real_imagenet_images_top1_agreement(tf, upstream, release, models):
    from zoo.preprocessing import preprocess_vgg

    x = np.stack([preprocess_vgg(image) for image in imagenet_val_bgr(require_shared())])
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(release.pb.read_bytes())
    ref = np.concatenate([upstream.run_graph(graph, x[i : i + 23]) for i in range(0, len(x), 23)])
    torch_model, keras_model = models
    assert_logits_match(torch_logits(torch_model, x), ref, "torch on 115 ImageNet images")
    keras_out = np.asarray(keras_model.predict(x, batch_size=23, verbose=0))
    assert_logits_match(keras_out, ref, "keras on 115 ImageNet images")
