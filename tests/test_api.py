"""The API a newcomer expects: ``zoo.create_model``, eval-mode models, clear input and user errors.

No weights needed: every registered model is built with random initialisation
at its smallest input size (its registry minimum, rounded up to its size
multiple), so the whole file runs in seconds on a CPU.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import zoo
from parity import small_valid_size
from zoo.errors import (
    ArgumentError,
    InputShapeError,
    InputTypeError,
    MissingFileError,
    UnknownFrameworkError,
    UnknownModelError,
    ZooError,
)

MODELS = zoo.list_models()
CLASSIFIERS = [name for name in MODELS if zoo.get_model_entry(name).is_classifier]
# The PyTorch class of each model users already know by name (the others: the builder's class).
CLASS_NAMES = {"mobilenet_v1": "MobileNetV1TfCompat", "resnet50": "ResNet50TfCompat", "flownet2_sd": "FlowNet2SD"}


@pytest.fixture(scope="module")
def torch_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: zoo.create_model(name) for name in MODELS}


@pytest.fixture(scope="module")
def keras_models(keras) -> dict:
    keras.utils.set_random_seed(0)
    return {name: zoo.create_model(name, framework="keras") for name in MODELS}


def _torch_input(name: str, seed: int = 0) -> torch.Tensor:
    """A batch of two valid inputs at the model's smallest size, in its PyTorch layout and value range."""
    return torch.from_numpy(zoo.get_model_entry(name).input.example(2, small_valid_size(name, 1), seed, "torch"))


def _keras_input(name: str, seed: int = 0) -> np.ndarray:
    """As :func:`_torch_input`, in the Keras layout."""
    return zoo.get_model_entry(name).input.example(2, small_valid_size(name, 1), seed, "keras")


def _layout_text(name: str, framework: str) -> str:
    """The input shape in ``framework``'s layout as the errors write it, e.g. ``(B, 2, H, W, 3)``."""
    spec = zoo.get_model_entry(name).input
    extent = {"N": "B", "C": str(spec.channels), "F": str(spec.frames), "H": "H", "W": "W"}
    return "(" + ", ".join(extent[axis] for axis in spec.layout(framework)) + ")"


def test_registry_names_are_builders():
    assert {"mobilenet_v1", "resnet50", "flownet2_sd"} <= set(zoo.list_models())
    assert zoo.mobilenet_v1 is zoo.mobilenet_v1_tf_compat
    assert zoo.resnet50 is zoo.resnet50_tf_compat
    for name in MODELS:
        entry = zoo.get_model_entry(name)
        assert getattr(zoo, name) is entry.load("torch_builder")
        assert getattr(zoo, entry.builder_name("torch")) is getattr(zoo, name)
        assert name in zoo.__all__
    assert "create_model" in zoo.__all__ and "mobilenet_v1" in zoo.__all__


def test_keras_registry_names_are_builders(keras):
    import zoo.keras

    for name in MODELS:
        assert getattr(zoo.keras, name) is zoo.get_model_entry(name).load("keras_builder")
    # The submodules stay importable by name.
    from zoo.keras.mobilenet_v1 import mobilenet_v1_tf_compat

    assert mobilenet_v1_tf_compat is zoo.keras.mobilenet_v1


def tiny_torch_builder(weights=None):
    return torch.nn.Identity()


def tiny_keras_builder(weights=None):
    return None


def test_builders_of_a_model_registered_at_run_time(keras):
    import dataclasses

    import zoo.keras
    from zoo.registry import register_model, unregister_model

    entry = dataclasses.replace(zoo.get_model_entry(MODELS[0]), name="tiny_api_model",
                                torch_builder=tiny_torch_builder, keras_builder=tiny_keras_builder)
    register_model(entry)
    try:
        assert zoo.tiny_api_model is zoo.tiny_torch_builder is tiny_torch_builder
        assert zoo.keras.tiny_api_model is zoo.keras.tiny_keras_builder is tiny_keras_builder
        for module in (zoo, zoo.keras):
            assert "tiny_api_model" in module.__all__ and "tiny_api_model" in dir(module)
        assert isinstance(zoo.create_model("tiny_api_model"), torch.nn.Identity)
    finally:
        unregister_model("tiny_api_model")
    assert not hasattr(zoo, "tiny_api_model") and not hasattr(zoo.keras, "tiny_api_model")
    assert "tiny_api_model" not in zoo.__all__


@pytest.mark.parametrize("name", MODELS)
def test_create_model_torch_is_in_eval_mode(name, torch_models):
    model = torch_models[name]
    direct = getattr(zoo, name)()
    assert type(model) is type(direct)  # create_model builds what the registry's builder builds
    if name in CLASS_NAMES:
        assert type(model).__name__ == CLASS_NAMES[name]
    assert isinstance(model, torch.nn.Module)
    assert model.training is False
    assert not any(module.training for module in model.modules())
    # The direct builder agrees: eval mode without weights too.
    assert direct.training is False


@pytest.mark.parametrize("name", list(MODELS))
def test_torch_output_of_one_sample_ignores_the_rest_of_the_batch(name, torch_models):
    # Train-mode batch norm would normalise with the batch's statistics, so
    # sample 0's output would change with sample 1.
    model = torch_models[name]
    x = _torch_input(name)
    other = x.clone()
    other[1] = other[1] * 5 + 3
    with torch.no_grad():
        out, out_other = model(x), model(other)
    assert isinstance(out, torch.Tensor)  # FlowNet2-SD in train mode returns a tuple of 5 flows
    assert out.shape[0] == 2
    torch.testing.assert_close(out[0], out_other[0], rtol=1e-5, atol=1e-6)


def test_torch_batch_check_detects_train_mode():
    # The check above is able to fail: in train mode, sample 0 depends on sample 1.
    torch.manual_seed(0)
    model = zoo.create_model("mobilenet_v1").train()
    x = _torch_input("mobilenet_v1")
    other = x.clone()
    other[1] = other[1] * 5 + 3
    with torch.no_grad():
        assert not torch.allclose(model(x)[0], model(other)[0], rtol=1e-5, atol=1e-6)


def test_create_model_passes_kwargs_and_weights(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = zoo.create_model("mobilenet_v1", num_classes=10)
    assert source.logits.out_channels == 10
    path = tmp_path / "mobilenet_v1.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = zoo.create_model("mobilenet_v1", weights=path, num_classes=10)
    assert loaded.training is False
    torch.testing.assert_close(loaded.logits.weight, source.logits.weight, rtol=0, atol=0)


def test_unknown_model():
    with pytest.raises(UnknownModelError, match=r"'mobilenet_v2'.*" + ", ".join(zoo.list_models())) as info:
        zoo.create_model("mobilenet_v2")
    assert isinstance(info.value, ZooError) and isinstance(info.value, KeyError)


@pytest.mark.parametrize("framework", ["jax", "tf", "Torch", ""])
def test_unknown_framework(framework):
    with pytest.raises(UnknownFrameworkError, match=r"unknown framework .*torch, keras") as info:
        zoo.create_model("resnet50", framework=framework)
    assert isinstance(info.value, ZooError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    ("convert", "got"),
    [
        (lambda x: x.numpy(), "numpy.ndarray of dtype float32"),
        (lambda x: x.numpy().astype(np.float64), "numpy.ndarray of dtype float64"),
        (lambda x: x.double(), "torch.Tensor of dtype float64"),
        (lambda x: x.clamp(0, 255).to(torch.uint8), "torch.Tensor of dtype uint8"),
        (lambda x: x.half(), "torch.Tensor of dtype float16"),
        (lambda x: x.long(), "torch.Tensor of dtype int64"),
        (lambda x: x.tolist(), "list"),
    ],
    ids=["numpy-float32", "numpy-float64", "float64", "uint8", "float16", "int64", "list"],
)
def test_torch_rejects_wrong_input_type(name, convert, got, torch_models):
    bad = convert(_torch_input(name)[:1])
    with pytest.raises(InputTypeError, match=r"expects a torch\.Tensor of dtype float32") as info:
        torch_models[name](bad)
    message = str(info.value)
    assert got in message
    assert type(torch_models[name]).__name__ in message
    assert isinstance(info.value, ZooError) and isinstance(info.value, TypeError)


def test_torch_numpy_error_says_how_to_convert(torch_models):
    with pytest.raises(InputTypeError, match=r"torch\.from_numpy"):
        torch_models["resnet50"](np.zeros((1, 3, 32, 32), np.float64))
    with pytest.raises(InputTypeError, match=r"preprocess"):
        torch_models["resnet50"](torch.zeros((1, 3, 32, 32), dtype=torch.uint8))


def test_estimate_flow_rejects_numpy(torch_models):
    from zoo.models.flownet2_sd import estimate_flow

    with pytest.raises(InputTypeError, match="estimate_flow expects a torch.Tensor of dtype float32"):
        estimate_flow(torch_models["flownet2_sd"], np.zeros((1, 3, 2, 50, 70), np.float32))


def test_torch_model_converted_to_float64_takes_float64():
    # The expected dtype is the model's own: .double() is a deliberate choice, not a mistake.
    torch.manual_seed(0)
    model = zoo.create_model("mobilenet_v1").double()
    x = _torch_input("mobilenet_v1").double()
    with torch.no_grad():
        assert model(x).dtype == torch.float64
    with pytest.raises(InputTypeError, match="dtype float64 .*got torch.Tensor of dtype float32"):
        model(x.float())


@pytest.mark.parametrize("name", MODELS)
def test_torch_keras_layout_input_names_the_layout(name, torch_models):
    entry = zoo.get_model_entry(name)
    wrong = torch.zeros(entry.input.shape("keras", 1, small_valid_size(name, 1)))
    # A classifier's image check names NHWC; a stack of frames is named by its Keras shape.
    expected = "NHWC" if entry.is_classifier else re.escape(f"Keras layout {_layout_text(name, 'keras')}")
    with pytest.raises(InputShapeError, match=expected):
        torch_models[name](wrong)


# --- Keras ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_create_model_keras(name, keras, keras_models):
    model = keras_models[name]
    assert isinstance(model, keras.Model)
    assert model.name == zoo.get_model_entry(name).keras_builder.rpartition(":")[2]
    out = np.asarray(model(_keras_input(name)))
    assert out.shape[0] == 2 and np.isfinite(out).all()


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_keras_default_call_is_inference(name, keras_models):
    # model(x) without training= uses the moving statistics: sample 0's output ignores sample 1,
    # and equals model(x, training=False) and model.predict(x).
    model = keras_models[name]
    x = _keras_input(name)
    other = x.copy()
    other[1] = other[1] * 5 + 3
    out = np.asarray(model(x))
    np.testing.assert_allclose(out[0], np.asarray(model(other))[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_keras_batch_check_detects_training_mode(keras):
    # The check above is able to fail: with training=True, batch norm uses the batch's statistics.
    keras.utils.set_random_seed(0)
    model = zoo.create_model("mobilenet_v1", framework="keras")
    x = _keras_input("mobilenet_v1")
    other = x.copy()
    other[1] = other[1] * 5 + 3
    first = np.asarray(model(x, training=True))[0]
    second = np.asarray(model(other, training=True))[0]
    assert not np.allclose(first, second, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    ("dtype", "hint"),
    [(np.float64, "convert with"), (np.uint8, "preprocess"), (np.float16, "convert with"), (np.int32, "preprocess")],
    ids=["float64", "uint8", "float16", "int32"],
)
@pytest.mark.parametrize("call", ["call", "predict", "predict_on_batch"])
def test_keras_rejects_non_float32(name, dtype, hint, call, keras_models):
    model = keras_models[name]
    bad = np.clip(_keras_input(name)[:1], 0, 255).astype(dtype)
    run = {"call": model, "predict": lambda x: model.predict(x, verbose=0), "predict_on_batch": model.predict_on_batch}
    with pytest.raises(InputTypeError, match=r"expects float32 input") as info:
        run[call](bad)
    message = str(info.value)
    assert f"numpy.ndarray of dtype {np.dtype(dtype).name}" in message
    assert hint in message
    assert isinstance(info.value, ZooError) and isinstance(info.value, TypeError)


def test_keras_rejects_float64_tensor_and_list(tf, keras_models):
    model = keras_models["mobilenet_v1"]
    with pytest.raises(InputTypeError, match="tensorflow.* of dtype float64"):
        model(tf.zeros((1, 32, 32, 3), tf.float64))
    with pytest.raises(InputTypeError, match="got list"):
        model(np.zeros((1, 32, 32, 3), np.float32).tolist())
    # float32 tensors and symbolic inputs pass.
    assert tuple(model(tf.zeros((1, 32, 32, 3))).shape) == (1, 1001)


@pytest.mark.parametrize("name", MODELS)
def test_keras_torch_layout_input_names_the_layout(name, keras_models):
    entry = zoo.get_model_entry(name)
    wrong = np.zeros(entry.input.shape("torch", 1, small_valid_size(name, 1)), np.float32)
    if entry.is_classifier:  # the image check names the shape it expects and asks about NCHW
        expected = re.escape(f"expects input shaped {_layout_text(name, 'keras')}") + ".*is it NCHW"
    else:  # a stack of frames is named by its PyTorch shape
        expected = re.escape(f"PyTorch layout {_layout_text(name, 'torch')}")
    with pytest.raises(InputShapeError, match=expected):
        keras_models[name](wrong)


def test_keras_model_still_folds_and_saves(keras, keras_models, tmp_path):
    from zoo.keras.fold import count_batch_norms, fold_batch_norms

    model = keras_models["mobilenet_v1"]
    x = _keras_input("mobilenet_v1")
    folded = fold_batch_norms(model)
    assert count_batch_norms(folded) == 0
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), rtol=1e-4, atol=1e-5)
    path = tmp_path / "mobilenet_v1.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(model(x)), rtol=0, atol=0)
    with pytest.raises(InputTypeError):
        reloaded(x.astype(np.float64))


# --- user errors are ZooErrors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "kind", "builtin"),
    [
        # Every classifier refuses zero classes.
        *[(lambda name=name: zoo.create_model(name, num_classes=0), ArgumentError, ValueError) for name in CLASSIFIERS],
        (lambda: zoo.layers.Conv2dSame(3, 8, 3, groups=0), ArgumentError, ValueError),
        (lambda: zoo.layers.tf_same_pad(5, 0, 1), ArgumentError, ValueError),
        (lambda: __import__("zoo.flow", fromlist=["x"]).read_flo("/nonexistent/x.flo"),
         MissingFileError, FileNotFoundError),
        (lambda: __import__("zoo.preprocessing", fromlist=["x"]).preprocess_vgg(np.zeros((8, 8), np.uint8)),
         InputShapeError, ValueError),
        (lambda: __import__("zoo.eval.preprocess", fromlist=["x"]).preprocess_image("/nonexistent.JPEG", "resnet50"),
         MissingFileError, FileNotFoundError),
        (lambda: __import__("zoo.eval.preprocess", fromlist=["x"]).preprocess_image("/x.JPEG", "vgg16"),
         ArgumentError, ValueError),
    ],
    ids=[*[f"{name}-classes" for name in CLASSIFIERS], "conv-groups", "pad-kernel", "read_flo", "preprocess-shape",
         "missing-image", "unknown-preprocessing"],
)
def test_user_errors_are_zoo_errors(call, kind, builtin):
    with pytest.raises(kind) as info:
        call()
    assert isinstance(info.value, ZooError)
    assert isinstance(info.value, builtin)  # code catching the built-in type keeps working
