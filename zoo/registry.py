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
        ModelEntry(
            name="flownet2_sd",
            torch_builder="zoo.models.flownet2_sd:flownet2_sd",
            keras_builder="zoo.keras.flownet2_sd:flownet2_sd",
            converter="zoo.convert.flownet2_sd:convert",
            upstream="NVIDIA flownet2-pytorch FlowNet2-SD_checkpoint.pth.tar (converted from lmb-freiburg's Caffe model)",
            torch_input="(B, 3, 2, H, W) float32 RGB in [0, 255], frame 0 then frame 1, H and W multiples of 64",
            keras_input="(B, 2, H, W, 3) float32 RGB in [0, 255]",
            preprocessing="none: the network subtracts the per-sample RGB mean and divides by 255 itself",
            label_offset=0,
            reference_metric={
                "epe": None,
                "protocol": "MPI-Sintel training pairs, 436x1024 centre-cropped to 384x1024 "
                "(NVIDIA flownet2-pytorch datasets.MpiSintel, StaticCenterCrop); average end-point error",
                "note": "empty until real weights are evaluated: the FlowNet 2.0 paper (Ilg et al., CVPR 2017) "
                "reports no stand-alone FlowNet2-SD Sintel number",
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
