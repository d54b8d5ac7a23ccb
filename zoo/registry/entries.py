"""The in-tree models' registry entries: everything generic code needs to know about each, as data.

One :class:`~zoo.registry.types.ModelEntry` per model. The facts of the upstream
files (node names, sizes) come from the model's spec module (:mod:`zoo.specs`),
so each is written once; the weights tags carry their URLs and checksums with
the source of each.
"""

from __future__ import annotations

from ..specs import flownet2_sd as flownet2_sd_spec
from ..specs import mobilenet_v1 as mobilenet_v1_spec
from ..specs import resnet50 as resnet50_spec
from .types import (
    BenchmarkSpec,
    ClassifierOutput,
    FlowOutput,
    InputSpec,
    MLPerfSpec,
    ModelEntry,
    OnnxNames,
    ParityTolerance,
    RemoteFile,
    UpstreamGraph,
    WeightsTag,
)

_MLPERF_TOP1_SOURCE = "MLPerf Inference reference (mlcommons/inference, vision/classification_and_detection README)"
_MLPERF_HARNESS = "mlcommons/inference, vision/classification_and_detection/python/main.py SUPPORTED_PROFILES/DATASETS"
# fp32 parity on logits: max |diff| <= 1e-4, relative to the logits' scale where it exceeds 10.
_LOGIT_TOLERANCE = ParityTolerance(atol=1e-4, relative_beyond=10.0)
# ImageNet classifiers: 224x224 as MLPerf feeds them; any size down to the total stride (32) works.
_IMAGENET_SIZE = (224, 224)
_CLASSIFIER_BENCHMARK = dict(batch_sizes=(1, 32), sample="image", speedup_goals=(1.5, 1.1))

MOBILENET_V1 = ModelEntry(
    name="mobilenet_v1",
    torch_builder="zoo.models.mobilenet_v1:mobilenet_v1_tf_compat",
    keras_builder="zoo.keras.mobilenet_v1:mobilenet_v1_tf_compat",
    converter="zoo.convert.mobilenet_v1:convert",
    standin="zoo.standins.mobilenet_v1",
    name_table="zoo.specs.mobilenet_v1:TABLE",
    graph_expectations="zoo.convert.mobilenet_v1:graph_expectations",
    upstream="TF-slim mobilenet_v1_1.0_224.tgz (2018_08_02), MLPerf Inference's float MobileNet-v1",
    input=InputSpec(
        torch_layout="NCHW", keras_layout="NHWC", default_size=_IMAGENET_SIZE, value_range=(-1.0, 1.0),
        min_size=mobilenet_v1_spec.TOTAL_STRIDE, description="RGB scaled to [-1, 1] (MLPerf pre_process_mobilenet)",
    ),
    output=ClassifierOutput(
        num_classes=mobilenet_v1_spec.NUM_CLASSES,
        label_offset=-1,  # 1001 outputs, class 0 = background: ImageNet label = argmax - 1
        categories="ImageNet-1k (ILSVRC2012) classes in synset order, after TF-slim's background class 0",
    ),
    tolerance=_LOGIT_TOLERANCE,
    onnx=OnnxNames(input=mobilenet_v1_spec.INPUT_NODE, output="logits"),
    preprocessing="zoo.preprocessing:preprocess_mobilenet",
    demo_inputs="zoo.samples:skimage_photos",
    upstream_graph=UpstreamGraph(
        input_node=mobilenet_v1_spec.INPUT_NODE,
        logits_node=mobilenet_v1_spec.LOGITS_NODE,
        frozen_member=mobilenet_v1_spec.FROZEN_MEMBER,
    ),
    mlperf=MLPerfSpec(
        model_name="mobilenet", dataset="imagenet_mobilenet", preprocessing_function="pre_process_mobilenet",
        # MLPerf v0.5 ran MobileNet-v1 on ResNet-50's ImageNet QSL settings.
        performance_sample_count=1024,
        citation={"model_name": _MLPERF_HARNESS, "dataset": _MLPERF_HARNESS,
                  "preprocessing_function": "mlcommons/inference, vision/classification_and_detection/python/dataset.py"},
    ),
    benchmark=BenchmarkSpec(
        quick_batch_sizes=(1, 4), published_gflop=1.14, loadgen_offline_samples=256, **_CLASSIFIER_BENCHMARK,
        citation={"published_gflop": "Howard et al. 2017, MobileNets, Table 8: 569 million mult-adds at 224x224"},
    ),
    reference_metric={
        "top1": 71.676,
        "dataset": "ILSVRC2012 validation, 50,000 images",
        "source": _MLPERF_TOP1_SOURCE,
    },
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
)

RESNET50 = ModelEntry(
    name="resnet50",
    torch_builder="zoo.models.resnet50:resnet50_tf_compat",
    keras_builder="zoo.keras.resnet50:resnet50_tf_compat",
    converter="zoo.convert.resnet50:convert",
    standin="zoo.standins.resnet50",
    name_table="zoo.specs.resnet50:TABLE",
    graph_expectations="zoo.convert.resnet50:graph_expectations",
    upstream="MLPerf Inference resnet50_v1.pb: TF official r1 ResNet-50 v1.5, exported 20181001, frozen",
    input=InputSpec(
        torch_layout="NCHW", keras_layout="NHWC", default_size=_IMAGENET_SIZE,
        # RGB in [0, 255] minus the means [123.68, 116.78, 103.94] (MLPerf pre_process_vgg).
        value_range=(-123.68, 151.06), min_size=resnet50_spec.MIN_IMAGE_SIZE,
        description="RGB minus [123.68, 116.78, 103.94], no scaling (MLPerf pre_process_vgg)",
    ),
    output=ClassifierOutput(
        num_classes=resnet50_spec.NUM_CLASSES,
        label_offset=-1,  # 1001 outputs, class 0 = background: ImageNet label = argmax - 1
        categories="ImageNet-1k (ILSVRC2012) classes in synset order, after the TF official models' "
        "background class 0",
    ),
    tolerance=_LOGIT_TOLERANCE,
    onnx=OnnxNames(input=resnet50_spec.INPUT_NODE, output="logits"),
    preprocessing="zoo.preprocessing:preprocess_vgg",
    demo_inputs="zoo.samples:skimage_photos",
    upstream_graph=UpstreamGraph(input_node=resnet50_spec.INPUT_NODE, logits_node=resnet50_spec.LOGITS_NODE),
    mlperf=MLPerfSpec(
        model_name="resnet50", dataset="imagenet", preprocessing_function="pre_process_vgg",
        performance_sample_count=1024,  # mlperf.conf: resnet50.*.performance_sample_count_override = 1024
        citation={"model_name": _MLPERF_HARNESS, "dataset": _MLPERF_HARNESS,
                  "preprocessing_function": "mlcommons/inference, vision/classification_and_detection/python/dataset.py",
                  "performance_sample_count": "mlcommons/inference, mlperf.conf"},
    ),
    benchmark=BenchmarkSpec(
        quick_batch_sizes=(1, 2), published_gflop=8.2, ceiling_fraction_goal=0.75,
        loadgen_offline_samples=96, **_CLASSIFIER_BENCHMARK,
        citation={"published_gflop": "about 4.1 billion multiply-adds per 224x224 image for ResNet-50 v1.5 "
                  "(NVIDIA DeepLearningExamples, ResNet50 v1.5 README)"},
    ),
    reference_metric={
        "top1": 76.456,
        "dataset": "ILSVRC2012 validation, 50,000 images",
        "source": _MLPERF_TOP1_SOURCE,
    },
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
)

FLOWNET2_SD = ModelEntry(
    name="flownet2_sd",
    torch_builder="zoo.models.flownet2_sd:flownet2_sd",
    keras_builder="zoo.keras.flownet2_sd:flownet2_sd",
    converter="zoo.convert.flownet2_sd:convert",
    standin="zoo.standins.flownet2_sd",
    name_table="zoo.specs.flownet2_sd:TABLE",
    upstream="NVIDIA flownet2-pytorch FlowNet2-SD_checkpoint.pth.tar (converted from lmb-freiburg's Caffe model)",
    input=InputSpec(
        torch_layout="NCFHW", keras_layout="NFHWC", frames=2, default_size=(384, 512),
        value_range=(0.0, flownet2_sd_spec.RGB_MAX), min_size=flownet2_sd_spec.SIZE_MULTIPLE,
        size_multiple=flownet2_sd_spec.SIZE_MULTIPLE,
        description="two RGB frames in [0, 255], frame 0 then frame 1; no preprocessing (the network "
        "subtracts the per-sample RGB mean and divides by 255 itself)",
    ),
    output=FlowOutput(channels=2, unit="pixels"),
    # Flow in pixels: max |diff| <= 1e-3 px, absolute (flow reaches tens of pixels).
    tolerance=ParityTolerance(atol=1e-3, unit="px"),
    onnx=OnnxNames(input="frames", output="flow"),
    demo_inputs="zoo.samples:stereo_motorcycle_pair",
    # The same tensors in the Caffe .caffemodel.h5 the checkpoint was converted from.
    alternate_names={key: f"data/{layer}/{blob}" for key, (layer, blob) in flownet2_sd_spec.CAFFE_BLOBS.items()},
    benchmark=BenchmarkSpec(
        batch_sizes=(1, 4), quick_batch_sizes=(1,), sample="pair", speedup_goals=(1.3, 1.3),
        # 256x384: a multiple of 64 at half the FLOPs, to keep a quick run under a minute.
        quick_size=(256, 384),
    ),
    reference_metric={
        "epe": None,
        "protocol": "MPI-Sintel training pairs, 436x1024 centre-cropped to 384x1024 "
        "(NVIDIA flownet2-pytorch datasets.MpiSintel, StaticCenterCrop); average end-point error",
        "note": "empty until real weights are evaluated: the FlowNet 2.0 paper (Ilg et al., CVPR 2017) "
        "reports no stand-alone FlowNet2-SD Sintel number",
    },
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
)

IN_TREE: tuple[ModelEntry, ...] = (MOBILENET_V1, RESNET50, FLOWNET2_SD)
