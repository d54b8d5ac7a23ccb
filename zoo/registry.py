"""The one place that holds a model's facts.

Each :class:`ModelEntry` names its builders and converter (by import path, so
reading the registry imports neither TensorFlow nor the models), its input
convention, preprocessing, label offset, categories and reference metric, and
its weights tags (:class:`WeightsTag`): the upstream release of each
(:class:`RemoteFile`: URLs in the order to try, size and checksum, with the
source of every fact). Everything else reads these entries: the hub
(:mod:`zoo.hub`), the evaluation (:mod:`zoo.eval`), the maintainer scripts and
the generated index ``weights/README.md``.

The only weights fact kept elsewhere is what a maintainer publishes: the
converted files' names, sizes, sha256 and URLs, in ``zoo/published.json``
(written by ``scripts/publish_weights.py``; see :mod:`zoo.manifest`).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import ManifestError, UnknownModelError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class RemoteFile:
    """A file the hub can download: name, URLs in the order to try, and what it must hash to.

    ``citation`` names the source of each fact (keys ``urls``, ``size``,
    ``sha256``, ``md5``). Invalid values raise :class:`~zoo.errors.ManifestError`.
    """

    file: str | None
    urls: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    citation: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        name, urls, size, sha256, md5 = self.file, self.urls, self.size, self.sha256, self.md5
        if name is not None and (not isinstance(name, str) or not name or "/" in name or "\\" in name):
            raise ManifestError(f"file must be a bare file name, got {name!r}")
        if not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
            raise ManifestError(f"urls must be a list of http(s) URLs, got {list(urls)!r}")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
            raise ManifestError(f"size must be a positive integer or null, got {size!r}")
        if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
            raise ManifestError(f"sha256 must be 64 lowercase hex digits or null, got {sha256!r}")
        if md5 is not None and not (isinstance(md5, str) and _MD5.fullmatch(md5)):
            raise ManifestError(f"md5 must be 32 lowercase hex digits or null, got {md5!r}")

    @property
    def verifiable(self) -> bool:
        """Whether a published checksum pins the file's bytes."""
        return bool(self.sha256 or self.md5)

    def describe(self) -> str:
        """``"<file> (<size> bytes, sha256 <hex>)"``, with what is known of size and checksum."""
        size = f"{self.size} bytes" if self.size is not None else "size unpublished"
        if self.sha256:
            checksum = f"sha256 {self.sha256}"
        elif self.md5:
            checksum = f"md5 {self.md5}"
        else:
            checksum = "no published checksum"
        return f"{self.file} ({size}, {checksum})"


@dataclass(frozen=True)
class WeightsTag:
    """One weights tag of a model (``zoo.<builder>(weights="<tag>")``): the upstream release it converts."""

    tag: str
    upstream: RemoteFile
    description: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """A model's builders, converter, input convention, preprocessing, categories, metric and weights tags."""

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
    # Number of outputs per position and what they mean (None: not a classifier).
    num_classes: int | None = None
    categories: str = ""
    weights: tuple[WeightsTag, ...] = ()
    # Sources of ``preprocessing`` and ``label_offset`` (the metric's is its "source").
    citation: Mapping[str, str] = field(default_factory=dict)

    def load(self, attribute: str) -> Callable:
        """Import and return the object that ``attribute`` (e.g. "converter") names."""
        module, _, name = getattr(self, attribute).partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def tags(self) -> list[str]:
        """The weights tags, default first."""
        return [w.tag for w in self.weights]

    def weights_tag(self, tag: str) -> WeightsTag:
        """The :class:`WeightsTag` ``tag``; the error lists the model's tags."""
        for weights in self.weights:
            if weights.tag == tag:
                return weights
        known = f"its tags: {', '.join(self.tags)}" if self.weights else "it has no weights tags"
        raise ManifestError(f"no weights tag {tag!r} for model {self.name!r} ({known})")


_MLPERF_TOP1_SOURCE = "MLPerf Inference reference (mlcommons/inference, vision/classification_and_detection README)"

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
                "source": _MLPERF_TOP1_SOURCE,
            },
            num_classes=1001,
            categories="ImageNet-1k (ILSVRC2012) classes in synset order, after TF-slim's background class 0",
            citation={
                "preprocessing": "MLPerf Inference pre_process_mobilenet "
                "(mlcommons/inference, vision/classification_and_detection/python/dataset.py)",
                "label_offset": "1001 outputs with TF-slim's background class 0: ImageNet label = argmax - 1",
            },
            weights=(
                WeightsTag(
                    tag="mlperf",
                    description="MLPerf Inference's float MobileNet-v1 (TF-slim mobilenet_v1_2018_08_02)",
                    upstream=RemoteFile(
                        file="mobilenet_v1_1.0_224.tgz",
                        urls=(
                            "https://zenodo.org/record/2269307/files/mobilenet_v1_1.0_224.tgz",
                            "http://download.tensorflow.org/models/mobilenet_v1_2018_08_02/mobilenet_v1_1.0_224.tgz",
                        ),
                        size=94321559,
                        sha256="2fadeabb9968ec6833bee903900dda6e61b3947200535874ce2fe42a8493abc0",
                        citation={
                            "urls": "MLPerf's copy on Zenodo (mlcommons/inference, vision/classification_and_detection "
                            "README), then the TF-slim release (tensorflow/models, research/slim/nets/mobilenet_v1.md, "
                            "mobilenet_v1_2018_08_02)",
                            "size": "openvinotoolkit/open_model_zoo, models/public/mobilenet-v1-1.0-224-tf/model.yml",
                            "sha256": "openvinotoolkit/open_model_zoo, models/public/mobilenet-v1-1.0-224-tf/model.yml; "
                            "the same digest pins this archive in TensorFlow's Bazel workspace (tflite_mobilenet_float)",
                        },
                    ),
                ),
            ),
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
                "source": _MLPERF_TOP1_SOURCE,
            },
            num_classes=1001,
            categories="ImageNet-1k (ILSVRC2012) classes in synset order, after the TF official models' "
            "background class 0",
            citation={
                "preprocessing": "MLPerf Inference pre_process_vgg "
                "(mlcommons/inference, vision/classification_and_detection/python/dataset.py)",
                "label_offset": "1001 outputs with the TF official models' background class 0: "
                "ImageNet label = argmax - 1",
            },
            weights=(
                WeightsTag(
                    tag="mlperf",
                    description="MLPerf Inference's resnet50_v1.pb (TF official r1 ResNet-50 v1.5, frozen)",
                    upstream=RemoteFile(
                        file="resnet50_v1.pb",
                        urls=("https://zenodo.org/record/2535873/files/resnet50_v1.pb",),
                        md5="7b94a2da05dd30f6c0af23a46bc08886",
                        citation={
                            "urls": "mlcommons/inference, vision/classification_and_detection README",
                            "size": "unknown exactly (about 102 MB); `scripts/fetch_upstream.py --record` prints it",
                            "md5": "MLCommons' own automation (mlcommons/ck, the get-ml-model-resnet50 "
                            "script's metadata)",
                        },
                    ),
                ),
            ),
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
            num_classes=None,
            categories="not a classifier: 2 channels of optical flow (x, y displacement in pixels)",
            citation={
                "preprocessing": "NVIDIA flownet2-pytorch models.py FlowNet2SD.forward (rgb_max 255, per-sample mean)",
                "label_offset": "not a classifier",
            },
            weights=(
                WeightsTag(
                    tag="nvidia",
                    description="NVIDIA flownet2-pytorch's FlowNet2-SD (converted from lmb-freiburg's Caffe model)",
                    upstream=RemoteFile(
                        file="FlowNet2-SD_checkpoint.pth.tar",
                        urls=("https://drive.google.com/uc?export=download&id=1QiT0bxXF04qLWc3ml0kPPlwmHwp24r75",),
                        citation={
                            "urls": "NVIDIA/flownet2-pytorch README, 'Converted Caffe Pre-trained Models' "
                            "(FlowNet2-SD, 173 MB, Google Drive)",
                            "size": "173 MB per the README; exact size unpublished",
                            "sha256": "none published: fetching warns and prints the sha256 it saw; "
                            "`scripts/fetch_upstream.py --record` prints the lines that pin it here",
                        },
                    ),
                ),
            ),
        ),
    )
}


def list_models() -> list[str]:
    """Names of the registered models."""
    return sorted(MODELS)


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; :class:`~zoo.errors.UnknownModelError` lists the known ones."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None
