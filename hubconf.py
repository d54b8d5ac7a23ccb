"""torch.hub entry points: ``torch.hub.load("<owner>/zoo", "resnet50_tf_compat", weights="mlperf")``.

One entry point per PyTorch builder of :mod:`zoo` (the registry's
``torch_builder`` functions); each delegates to its builder, so the models,
weights tags and checks are the package's own. torch.hub imports this file
from the repository's folder with that folder first on ``sys.path``, so a plain
checkout works without ``pip install``: ``import zoo`` below finds the
checkout's package, and the check after it refuses a different ``zoo`` that
is already imported, whose models could differ from this checkout's.
"""

from __future__ import annotations

# Modules only: torch.hub.list lists every public callable here, classes included.
import os
import pathlib
import typing

import torch

import zoo as _zoo

# torch.hub checks these import names before calling an entry point: the
# runtime dependencies of pyproject.toml (the PyTorch side needs no Keras).
dependencies = ["numpy", "torch", "requests", "safetensors"]

_CHECKOUT = pathlib.Path(__file__).resolve().parent
_ZOO_ROOT = pathlib.Path(_zoo.__file__).resolve().parent.parent
if _ZOO_ROOT != _CHECKOUT:
    # Python caches a module per process: a `zoo` imported earlier (e.g. a
    # pip-installed release) would silently stand in for this checkout's.
    raise ImportError(
        f"hubconf.py in {_CHECKOUT} needs the zoo package of that checkout, but this process has "
        f"already imported zoo from {_ZOO_ROOT}; call torch.hub.load in a fresh Python process "
        f"(before any `import zoo`) or use the installed zoo directly"
    )


def mobilenet_v1_tf_compat(weights: str | os.PathLike | None = None, **kwargs: typing.Any) -> torch.nn.Module:
    """MobileNet-v1 1.0/224 as MLPerf Inference ships it (TF-slim release 2018_08_02), in PyTorch.

    Computes what the upstream TensorFlow graph computes (fp32 rounding),
    at 224x224 or any input size >= 32.

    Input: a float32 torch.Tensor, NCHW (B, 3, H, W), RGB scaled to [-1, 1]
    (MLPerf pre_process_mobilenet: zoo.preprocessing.preprocess_mobilenet).
    Output: (B, 1001) logits; class 0 is the background class, so the
    ImageNet label is argmax - 1.

    Args:
        weights: None for random initialisation; "mlperf" for MLPerf's
            float MobileNet-v1 (downloaded and converted on first use, then
            cached); or the path of a converted .safetensors file
            (python scripts/convert.py mobilenet_v1 ...).
        **kwargs: passed to zoo.mobilenet_v1_tf_compat (num_classes).

    Returns the model in eval mode.
    """
    return _zoo.mobilenet_v1_tf_compat(weights=weights, **kwargs)


def resnet50_tf_compat(weights: str | os.PathLike | None = None, **kwargs: typing.Any) -> torch.nn.Module:
    """ResNet-50 v1.5 as MLPerf Inference ships it (resnet50_v1.pb, TF official r1 models), in PyTorch.

    Computes what the upstream TensorFlow graph computes (fp32 rounding),
    at 224x224 or any input size >= 32.

    Input: a float32 torch.Tensor, NCHW (B, 3, H, W), RGB minus the means
    [123.68, 116.78, 103.94], no scaling (MLPerf pre_process_vgg:
    zoo.preprocessing.preprocess_vgg). Output: (B, 1001) logits; class 0 is
    the background class, so the ImageNet label is argmax - 1.

    Args:
        weights: None for random initialisation; "mlperf" for MLPerf's
            resnet50_v1.pb (downloaded and converted on first use, then
            cached); or the path of a converted .safetensors file
            (python scripts/convert.py resnet50 ...).
        **kwargs: passed to zoo.resnet50_tf_compat (num_classes).

    Returns the model in eval mode.
    """
    return _zoo.resnet50_tf_compat(weights=weights, **kwargs)


def flownet2_sd(weights: str | os.PathLike | None = None, **kwargs: typing.Any) -> torch.nn.Module:
    """FlowNet2-SD, NVIDIA flownet2-pytorch's small-displacement optical flow network, in PyTorch.

    Computes what NVIDIA's model computes (fp32 rounding).

    Input: a float32 torch.Tensor (B, 3, 2, H, W): two RGB frames in
    [0, 255], frame 0 then frame 1, with H and W multiples of 64 (for other
    sizes use zoo.models.flownet2_sd.estimate_flow, which resizes). No
    preprocessing: the network subtracts the per-sample RGB mean and divides
    by 255 itself. Output: (B, 2, H, W) flow in pixels (x then y displacement).

    Args:
        weights: None for random initialisation; "nvidia" for NVIDIA's
            FlowNet2-SD checkpoint (downloaded and converted on first use,
            then cached); or the path of a converted .safetensors file
            (python scripts/convert.py flownet2_sd ...).

    Returns the model in eval mode.
    """
    return _zoo.flownet2_sd(weights=weights, **kwargs)
