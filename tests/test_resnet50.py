"""ResNet-50 v1.5 (MLPerf): both ports against TensorFlow executing the upstream frozen graph.

The reference is TensorFlow running the stand-in ``resnet50_v1.pb`` (written by
zoo.standins.resnet50 in the upstream format: Pad + VALID for strided
convolutions, SAME elsewhere, FusedBatchNorm epsilon 1.001e-5, SAME max pool)
at each tested size. The bar is the registry entry's tolerance and the same
top-1 (tests/parity.py). The tests every model shares (224x224 parity, the
converter's metadata, determinism and script, truncated files) are in
tests/test_models.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import zoo
from parity import assert_convert_fails, assert_matches_reference, imagenet_val_bgr, require_shared, torch_logits
from zoo.errors import FormatError, TensorShapeError

MODEL = "resnet50"
ENTRY = zoo.get_model_entry(MODEL)


@pytest.fixture(scope="module")
def upstream(tf):
    from zoo.standins import resnet50

    return resnet50


@pytest.fixture(scope="module")
def release(upstream, standins):
    return SimpleNamespace(pb=standins.source(MODEL), weights=upstream.make_weights(0))


@pytest.fixture(scope="module")
def converted(release, standins):
    return standins.converted(MODEL)


@pytest.fixture(scope="module")
def models(converted):
    return zoo.resnet50_tf_compat(weights=converted), zoo.keras.resnet50_tf_compat(weights=converted)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """chelsea, coffee, astronaut, rocket: MLPerf pre_process_vgg, NHWC."""
    return ENTRY.load("demo_inputs")(ENTRY)


def _random(size: tuple[int, int], count: int = 2, seed: int = 1) -> np.ndarray:
    return ENTRY.input.example(count, size, seed=seed, framework="keras")


def _check_both(upstream, release, models, x: np.ndarray, size, what: str) -> None:
    graph = upstream.frozen_graph_def(release.weights, image_size=size)
    ref = upstream.run_graph(graph, x)
    assert 0.3 < ref.std() < 30, "stand-in logits should be of realistic scale"
    torch_model, keras_model = models
    assert_matches_reference(MODEL, torch_logits(torch_model, x), ref, f"torch {what}")
    assert_matches_reference(MODEL, np.asarray(keras_model(x, training=False)), ref, f"keras {what}")


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
    # The same bar as for the unfolded port.
    assert_matches_reference(MODEL, np.asarray(folded(x, training=False)), upstream.reference_forward(release.pb, x),
                             "keras folded 224")


def test_fold_batch_norms_rejects_a_subclassed_model(tf):
    import keras

    from zoo.keras.fold import fold_batch_norms

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="functional keras.Model"):
        fold_batch_norms(Subclassed())


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
    assert_convert_fails(
        MODEL,
        tmp_path / "missing.pb",
        tmp_path / "out.safetensors",
        FormatError,
        "missing tensor resnet_model/batch_normalization_24/moving_variance",
    )
    for node in wrong.node:
        if node.name == "resnet_model/conv2d_29/kernel":
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.zeros((3, 3, 256, 128), np.float32)))
    (tmp_path / "wrong.pb").write_bytes(wrong.SerializeToString())
    assert_convert_fails(
        MODEL,
        tmp_path / "wrong.pb",
        tmp_path / "out.safetensors",
        TensorShapeError,
        r"resnet_model/conv2d_29/kernel has shape \(3, 3, 256, 128\), expected \(3, 3, 256, 256\)",
    )


def test_registry_entry():
    assert MODEL in zoo.list_models()
    assert ENTRY.label_offset == -1 and ENTRY.reference_metric["top1"] == 76.456


def test_real_imagenet_images_top1_agreement(tf, upstream, release, models):
    preprocess = ENTRY.load("preprocessing")
    x = np.stack([preprocess(image) for image in imagenet_val_bgr(require_shared())])
    ref = np.concatenate([upstream.reference_forward(release.pb, x[i : i + 23]) for i in range(0, len(x), 23)])
    torch_model, keras_model = models
    assert_matches_reference(MODEL, torch_logits(torch_model, x), ref, "torch on 115 ImageNet images")
    keras_out = np.asarray(keras_model.predict(x, batch_size=23, verbose=0))
    assert_matches_reference(MODEL, keras_out, ref, "keras on 115 ImageNet images")
