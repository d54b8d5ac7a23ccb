"""A model defined entirely in this file, registered from outside ``zoo/``, through every generic path.

The model is deliberately tiny but has what the real ports have: a TF ``SAME``
strided convolution (asymmetric padding at even sizes), a TF batch norm, a
``SAME`` max pool that pads with -inf, a global mean and a dense classifier. It
has both definitions (PyTorch on ``zoo.layers``, Keras on Keras's own layers),
an "upstream release" (an ``.npz`` of TF-layout variables, written by its
stand-in), a converter, a name table and one :class:`zoo.registry.ModelEntry`.
Nothing in ``zoo/`` names it: ``create_model`` in both frameworks,
``fast_inference_model``, ONNX export, ``scripts/convert.py``,
``scripts/verify_accuracy.py``, the benchmark harness and ``torch.hub`` find it
through the registry alone.

The reference is TensorFlow's own ops (``tf.nn.conv2d`` with ``SAME``,
``tf.nn.max_pool2d``, ...) on the upstream file's variables, sharing no code
with either port; parity is the registry's logit bar, max |diff| <= 1e-4.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import zoo
from parity import ROOT, load_script, require_module
from zoo.convert.canonical import CONVERTER_VERSION, check_names_and_shapes, sha256_file, write_canonical
from zoo.errors import FormatError
from zoo.fileio import atomic_write_bytes
from zoo.hub import resolve_weights
from zoo.layers import MaxPool2dSame, batch_norm_2d_tf
from zoo.layers.conv2d_same import Conv2dSame
from zoo.layouts import Layout, tf_to_torch
from zoo.registry import (
    BenchmarkSpec,
    ClassifierOutput,
    InputSpec,
    ModelEntry,
    OnnxNames,
    ParityTolerance,
    register_model,
    unregister_model,
)
from zoo.specs.common import TableBuilder, torch_shapes
from zoo.weights import load_torch_weights

NAME = "tiny_same_net"
UPSTREAM_FILE = "tiny_same_net.npz"
CHANNELS, CLASSES, EPSILON = 8, 5, 1e-3
SCOPE = "TinySameNet"

# --- spec: the name table (upstream TF variable -> PyTorch key -> Keras weight) -------------


def _name_table():
    table = TableBuilder("tf")
    table.conv("conv", (CHANNELS, 3, 3, 3), f"{SCOPE}/conv/kernel")
    table.batch_norm("bn", f"{SCOPE}/bn", CHANNELS)
    table.conv("fc", (CLASSES, CHANNELS), f"{SCOPE}/fc/kernel", f"{SCOPE}/fc/bias", layout=Layout.DENSE)
    return table.build()


TABLE = _name_table()

# --- the PyTorch definition ------------------------------------------------------------------


class TinySameNet(nn.Module):
    """SAME conv 3x3/2 -> TF batch norm -> ReLU -> SAME max pool 3x3/2 -> mean -> dense."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = Conv2dSame(3, CHANNELS, 3, stride=2, bias=False)
        self.bn = batch_norm_2d_tf(CHANNELS, epsilon=EPSILON)
        self.act = nn.ReLU()
        self.pool = MaxPool2dSame(3, 2)
        self.fc = nn.Linear(CHANNELS, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


def tiny_same_net(weights: str | os.PathLike | None = None, cast_weights: bool = False) -> TinySameNet:
    """The PyTorch builder: random, or a converted file / tag through the hub."""
    model = TinySameNet()
    if weights is not None:
        load_torch_weights(model, resolve_weights(weights, NAME), cast=cast_weights)
    return model.eval()


# --- the Keras definition --------------------------------------------------------------------


def tiny_same_net_keras(weights: str | os.PathLike | None = None, cast_weights: bool = False):
    """The Keras builder (NHWC), on Keras's own SAME layers."""
    import keras

    from zoo.keras.input_checks import InputCheckedModel
    from zoo.keras.weights import kernel_initializer, load_canonical_into_keras

    init = kernel_initializer(weights)
    inputs = keras.Input((None, None, 3), name="input")
    x = keras.layers.Conv2D(CHANNELS, 3, 2, padding="same", use_bias=False, name="conv", kernel_initializer=init)(inputs)
    x = keras.layers.BatchNormalization(epsilon=EPSILON, name="bn")(x)
    x = keras.layers.ReLU(name="act")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="mean")(x)
    outputs = keras.layers.Dense(CLASSES, name="fc", kernel_initializer=init)(x)
    model = InputCheckedModel(inputs, outputs, name=NAME)
    if weights is not None:
        load_canonical_into_keras(model, resolve_weights(weights, NAME), NAME, TABLE, cast=cast_weights)
    return model


# --- the stand-in: the upstream release (.npz of TF variables) and the upstream computation ---


class StandIn:
    """Writes the "upstream release" and runs the upstream computation with TensorFlow's own ops."""

    @staticmethod
    def write_upstream(folder: str | os.PathLike, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        variables = {}
        for tensor in TABLE:
            if tensor.upstream.endswith("moving_variance"):
                value = rng.uniform(0.5, 2.0, tensor.upstream_shape)
            elif tensor.upstream.endswith("gamma"):
                value = rng.uniform(0.5, 1.5, tensor.upstream_shape)
            else:
                value = rng.normal(0.0, 0.5, tensor.upstream_shape)
            variables[tensor.upstream] = value.astype(np.float32)
        path = Path(folder) / UPSTREAM_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **variables)
        return atomic_write_bytes(path, buffer.getvalue())

    @staticmethod
    def reference_forward(upstream_file: str | os.PathLike, batch: np.ndarray) -> np.ndarray:
        tf = require_module("tensorflow")
        with np.load(upstream_file, allow_pickle=False) as release:
            v = {key: release[key] for key in release.files}
        x = tf.nn.conv2d(tf.constant(batch, tf.float32), v[f"{SCOPE}/conv/kernel"], 2, "SAME")
        x = tf.nn.batch_normalization(x, v[f"{SCOPE}/bn/moving_mean"], v[f"{SCOPE}/bn/moving_variance"],
                                      v[f"{SCOPE}/bn/beta"], v[f"{SCOPE}/bn/gamma"], EPSILON)
        x = tf.nn.max_pool2d(tf.nn.relu(x), 3, 2, "SAME")
        x = tf.reduce_mean(x, axis=(1, 2))
        return (tf.matmul(x, v[f"{SCOPE}/fc/kernel"]) + v[f"{SCOPE}/fc/bias"]).numpy()


# --- the converter -----------------------------------------------------------------------------


def convert(source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """The release's .npz -> zoo's canonical .safetensors, strictly through the name table."""
    try:
        with np.load(source, allow_pickle=False) as release:
            upstream = {key: release[key] for key in release.files}
    except (OSError, ValueError) as error:
        raise FormatError(f"{source}: not a readable .npz release ({error})") from None
    check_names_and_shapes({t.upstream: t.upstream_shape for t in TABLE}, upstream, source)
    canonical = {t.torch: tf_to_torch(t.layout, upstream[t.upstream]) for t in TABLE}
    check_names_and_shapes(torch_shapes(TABLE), canonical, source)
    metadata = {"model": NAME, "source_file": Path(source).name, "source_sha256": sha256_file(source),
                "converter_version": CONVERTER_VERSION, "format": "pt"}
    return write_canonical(canonical, out, metadata)


def preprocess(image_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 -> RGB 32x32 in [-1, 1], NHWC (a nearest-neighbour resize keeps this free of OpenCV)."""
    rows = np.linspace(0, image_bgr.shape[0] - 1, 32).round().astype(int)
    cols = np.linspace(0, image_bgr.shape[1] - 1, 32).round().astype(int)
    rgb = image_bgr[rows][:, cols, ::-1].astype(np.float32)
    return rgb / 127.5 - 1.0


def demo_inputs(entry: ModelEntry) -> np.ndarray:
    return entry.input.example(4, seed=7, framework="keras")


ENTRY = ModelEntry(
    name=NAME,
    torch_builder=tiny_same_net,
    keras_builder=tiny_same_net_keras,
    converter=convert,
    standin=StandIn,
    name_table=TABLE,
    upstream="a stand-in release defined in tests/test_external_model.py",
    input=InputSpec(torch_layout="NCHW", keras_layout="NHWC", default_size=(32, 32), value_range=(-1.0, 1.0),
                    min_size=8),
    output=ClassifierOutput(num_classes=CLASSES, label_offset=0, categories="five test classes"),
    tolerance=ParityTolerance(atol=1e-4, relative_beyond=10.0),
    onnx=OnnxNames(input="images", output="logits"),
    benchmark=BenchmarkSpec(batch_sizes=(1, 4), quick_batch_sizes=(1, 2)),
    preprocessing=preprocess,
    demo_inputs=demo_inputs,
)


# --- the tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """The entry registered for this module's tests, its upstream file and its conversion."""
    folder = tmp_path_factory.mktemp("tiny")
    register_model(ENTRY)
    try:
        source = StandIn.write_upstream(folder / "upstream", seed=0)
        weights = convert(source, folder / f"{NAME}.safetensors")
        yield source, weights
    finally:
        unregister_model(NAME)


def _inputs(count: int = 3, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    # 32: even sizes make the strided SAME conv and pool pad asymmetrically; 33: symmetrically.
    return ENTRY.input.example(count, size=size, seed=1, framework="keras")


def _check(ours, reference, what: str) -> None:
    ours = np.asarray(ours)
    bound = ENTRY.tolerance.bound(reference)  # 1e-4, relative to the logits' scale beyond 10
    diff = ENTRY.tolerance.max_diff(ours, reference)
    assert diff <= bound, f"{what}: max |diff| {diff:.3g} > {bound:.3g}"


def _torch_out(model, x_nhwc: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))).numpy()


@pytest.mark.parametrize("size", [(32, 32), (33, 30)])
def test_create_model_in_both_frameworks_matches_tensorflow(registered, size, keras):
    source, weights = registered
    assert NAME in zoo.list_models()
    x = _inputs(size=size)
    reference = StandIn.reference_forward(source, x)
    assert reference.std() > 0.1, "the reference should not be degenerate"
    _check(_torch_out(zoo.create_model(NAME, weights=weights), x), reference, "torch")
    _check(zoo.create_model(NAME, weights=weights, framework="keras")(x, training=False), reference, "keras")
    # The builders are attributes too, as for the in-tree models.
    assert getattr(zoo, NAME) is tiny_same_net


def test_fast_inference_model_matches_tensorflow(registered):
    source, weights = registered
    x = _inputs()
    fast = zoo.fast_inference_model(zoo.create_model(NAME, weights=weights))
    _check(_torch_out(fast, x), StandIn.reference_forward(source, x), "fast form")


def test_onnx_export_matches_tensorflow(registered, tmp_path):
    ort = require_module("onnxruntime")
    require_module("onnxscript")
    from zoo.export import export_model

    source, weights = registered
    out = export_model(NAME, weights, tmp_path / "tiny.onnx", batch=2)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    x = _inputs(2)
    (logits,) = session.run(None, {"images": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
    _check(logits, StandIn.reference_forward(source, x), "onnx")


def test_convert_script_writes_the_converters_file(registered, tmp_path, capsys):
    source, weights = registered
    out = tmp_path / "cli.safetensors"
    assert load_script("convert").main([NAME, "--source", str(source), "--out", str(out)]) == 0
    assert out.read_bytes() == weights.read_bytes()
    assert load_script("convert").main([NAME, "--names"]) == 0
    assert f"{SCOPE}/fc/kernel" in capsys.readouterr().out


def test_verify_accuracy_script_on_preprocessed_arrays(registered, tmp_path):
    """Labels are TensorFlow's top-1 on each array, so the script must report 100% top-1 through the port."""
    source, weights = registered
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    from parity import skimage_photos_bgr

    images = np.stack([preprocess(photo) for photo in skimage_photos_bgr()] + list(_inputs(4)))
    labels = StandIn.reference_forward(source, images).argmax(1)
    lines = []
    for i, (image, label) in enumerate(zip(images, labels)):
        np.save(arrays / f"img_{i}.JPEG.npy", image)
        lines.append(f"img_{i}.JPEG {label}")
    (tmp_path / "val_map.txt").write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.json"
    argv = [NAME, "--weights", str(weights), "--arrays", str(arrays), "--val-map", str(tmp_path / "val_map.txt"),
            "--batch-size", "3", "--report", str(report), "--quiet"]
    assert load_script("verify_accuracy").main(argv) == 0
    result = json.loads(report.read_text())
    assert result["count"] == len(images)
    assert result["top1"]["percent"] == pytest.approx(100.0)


def test_benchmark_harness_quick_mode(registered, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    sys.modules.pop("run", None)
    import run

    try:
        assert run.main(["--quick", "--models", NAME, "--out-dir", str(tmp_path), "--threads", "1",
                         "--no-conversion", "--no-eval", "--no-loadgen"]) == 0
    finally:
        sys.modules.pop("run", None)
    report = json.loads((tmp_path / "latest.json").read_text())
    (model,) = report["models"]
    assert model["model"] == NAME
    rows = [row for batch in model["batches"] for row in batch["rows"]]
    assert any(row["kind"] == "reference" and row["throughput"] for row in rows), "the upstream reference was timed"
    torch_rows = [row for row in rows if row["mode"].startswith("torch") and not row["error"]]
    assert torch_rows and all(row["exact"] for row in torch_rows), [(r["mode"], r["max_abs_diff"]) for r in torch_rows]


def test_torch_hub_lists_and_loads_it(registered, monkeypatch):
    source, weights = registered
    # torch.hub.list takes only a GitHub repo: resolve any repo to this checkout (no network).
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: str(ROOT))
    assert NAME in torch.hub.list("zoo/zoo", trust_repo=True)
    model = torch.hub.load(str(ROOT), NAME, source="local", weights=str(weights))
    x = _inputs()
    _check(_torch_out(model, x), StandIn.reference_forward(source, x), "torch.hub")
