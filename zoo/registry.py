"""One entry per model: everything about it that is not code.

Builders and converters are named by import path, so reading the registry
imports neither TensorFlow nor the models.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ModelEntry:
    """A model's builders, converter, input convention, preprocessing and reference metric."""

    name: str
    torch_builder: str
    keras_builder: str
    converter: str
    upstream: str
    torch_input: str
    keras_input: str
    preprocessing: str
    label_offset: int
    reference_metric: dict[str, Any] = field(default_factory=dict)

    def load(self, attribute: str) -> Callable:
        """Import and return the object that ``attribute`` (e.g. "converter") names."""
        module, _, name = getattr(self, attribute).partition(":")
        return getattr(importlib.import_module(module), name)


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            name="mobilenet_v1",
            torch_builder="zoo.models.mobilenet_v1:mobilenet_v1_tf_compat",
            keras_builder="zoo.keras.mobilenet_v1:mobilenet_v1_tf_compat",
            converter="zoo.convert.mobilenet_v1:convert",
            upstream="TF-slim mobilenet_v1_1.0_224.tgz (2018_08_02), MLPerf Inference's float MobileNet-v1",
            torch_input="NCHW float32 in [-1, 1], 224x224 (any size >= 32)",
            keras_input="NHWC float32 in [-1, 1]",
            preprocessing="zoo.preprocessing:preprocess_mobilenet",
            # 1001 outputs, class 0 = background: ImageNet label = argmax - 1.
            label_offset=-1,
            reference_metric={
                "top1": 71.676,
                "dataset": "ILSVRC2012 validation, 50,000 images",
                "source": "MLPerf Inference reference (mlcommons/inference, vision/classification_and_detection README)",
            },
        ),
        ModelEntry(
            name="resnet50",
            torch_builder="zoo.models.resnet50:resnet50_tf_compat",
            keras_builder="zoo.keras.resnet50:resnet50_tf_compat",
            converter="zoo.convert.resnet50:convert",
            upstream="MLPerf Inference resnet50_v1.pb: TF official r1 ResNet-50 v1.5, exported 20181001, frozen",
            torch_input="NCHW float32, RGB minus [123.68, 116.78, 103.94], 224x224 (any size >= 32)",
            keras_input="NHWC float32, RGB minus [123.68, 116.78, 103.94]",
            preprocessing="zoo.preprocessing:preprocess_vgg",
            # 1001 outputs, class 0 = background: ImageNet label = argmax - 1.
            label_offset=-1,
            reference_metric={
                "top1": 76.456,
                "dataset": "ILSVRC2012 validation, 50,000 images",
                "source": "MLPerf Inference reference (mlcommons/inference, vision/classification_and_detection README)",
            },
        ),
    )
}


def list_models() -> list[str]:
    """Names of the registered models."""
    return sorted(MODELS)


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; a clear error lists the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None
