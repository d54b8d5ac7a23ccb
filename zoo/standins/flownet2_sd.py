"""Stand-in for NVIDIA's ``FlowNet2-SD_checkpoint.pth.tar``.

The real file (NVIDIA/flownet2-pytorch README) is ``torch.save`` of
``{'epoch': 0, 'state_dict': ..., 'best_EPE': ...}`` with the 60 tensors of
``FlowNet2SD``; it predates PyTorch's zip serialization, so it is written in the
legacy (non-zip) format. The weights here are random, scaled so that features
stay O(1) through the network and the eval output is flow of a few pixels to a
few tens of pixels on real image pairs, as a trained model's is.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..fileio import atomic_output
from ..specs import flownet2_sd as spec
from ..specs.flownet2_sd import caffe_layer_name  # noqa: F401  (re-exported)

# Names and shapes from the model's name table (zoo.specs.flownet2_sd, NVIDIA's
# networks/FlowNetSD.py with batchNorm=False): module -> (in, out) channels.
_CONVS = {layer.module: (layer.in_channels, layer.out_channels) for layer in spec.LAYERS if layer.kind == "conv"}
_DECONVS = {layer.module: (layer.in_channels, layer.out_channels) for layer in spec.LAYERS if layer.kind == "deconv"}
_SHAPES = {tensor.upstream: tensor.upstream_shape for tensor in spec.TABLE}  # state_dict key -> shape
# The flow heads predict flow / 20; this gain puts the x20 output at a few to tens of pixels.
_FLOW_HEAD_GAIN = 1.5


def make_state_dict(seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """The 60 tensors of the checkpoint's ``state_dict``, random, deterministic per ``seed``."""
    rng = np.random.default_rng(seed)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()

    def put(name: str, weight: np.ndarray, bias: np.ndarray) -> None:
        state[f"{name}.weight"] = torch.from_numpy(weight.astype(np.float32))
        state[f"{name}.bias"] = torch.from_numpy(bias.astype(np.float32))

    for name, (cin, _) in _CONVS.items():
        # He init for LeakyReLU(0.1): std sqrt(2 / ((1 + 0.1^2) * fan_in)).
        std = np.sqrt(2.0 / (1.01 * cin * 9))
        if name.startswith("predict_flow"):
            std *= _FLOW_HEAD_GAIN
        put(name, rng.standard_normal(_SHAPES[f"{name}.weight"]) * std, rng.normal(0.0, 0.01, _SHAPES[f"{name}.bias"]))
    for name, (cin, _) in _DECONVS.items():
        # A k4 s2 transposed conv sums about cin * 4 taps per output pixel.
        std = np.sqrt(2.0 / (1.01 * cin * 4)) if cin > 2 else 0.25
        put(name, rng.standard_normal(_SHAPES[f"{name}.weight"]) * std, rng.normal(0.0, 0.01, _SHAPES[f"{name}.bias"]))
    return state


def write_checkpoint(path: str | os.PathLike, seed: int = 0, extra: dict | None = None) -> Path:
    """Write the stand-in ``FlowNet2-SD_checkpoint.pth.tar`` (atomic: temporary name, then rename)."""
    path = Path(path)
    payload = {"epoch": 0, "state_dict": make_state_dict(seed), "best_EPE": float(np.float32(2.5 + seed % 7))}
    payload.update(extra or {})
    with atomic_output(path) as f:
        torch.save(payload, f, _use_new_zipfile_serialization=False)
    return path


def write_caffe_h5(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a stand-in of lmb-freiburg's ``FlowNet2-SD_weights.caffemodel.h5``.

    HDF5 layout ``data/<layer>/0`` (weights) and ``data/<layer>/1`` (biases), Caffe
    layer names, float32. Caffe's blobs have PyTorch's layouts (Convolution
    ``(O, I, kh, kw)``, Deconvolution ``(I, O, kh, kw)``); conv0 takes each frame
    as BGR, so its input channels are those of :func:`make_state_dict` reordered
    from RGB to BGR within each frame (NVIDIA flipped them when converting).
    The same ``seed`` gives the same model as :func:`write_checkpoint`.
    """
    import h5py

    path = Path(path)
    state = make_state_dict(seed)
    with atomic_output(path) as f, h5py.File(f, "w") as h5:
        data = h5.create_group("data")
        for key in state:
            if not key.endswith(".weight"):
                continue
            module = key.removesuffix(".weight")
            weight = state[key].numpy()
            if key == spec.CONV0_WEIGHT:
                weight = weight[:, list(spec.CONV0_BGR_TO_RGB)]  # RGB -> BGR: the permutation is its own inverse
            layer, blob = spec.CAFFE_BLOBS[key]
            bias_layer, bias_blob = spec.CAFFE_BLOBS[f"{module}.bias"]
            assert bias_layer == layer
            group = data.require_group(layer)
            group.create_dataset(blob, data=weight)
            group.create_dataset(bias_blob, data=state[f"{module}.bias"].numpy())
    return path

def nvidia_forward(
    state: Mapping[str, torch.Tensor], frames: torch.Tensor, training: bool = False
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """NVIDIA ``FlowNet2SD.forward``, restated with ``torch.nn.functional`` on a checkpoint's state_dict.

    The reference the ports are tested against: written from the upstream
    facts alone, sharing no code with :mod:`zoo.models.flownet2_sd`.
    ``frames``: (B, 3, 2, H, W) RGB in [0, 255]. Eval: flow2 * 20 upsampled x4
    (bilinear, align_corners=False); training: (flow2, ..., flow6).
    """

    def conv(name, x, stride=1, leaky=True):
        y = F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], stride, 1)
        return F.leaky_relu(y, 0.1) if leaky else y

    def deconv(name, x, leaky=True):
        y = F.conv_transpose2d(x, state[f"{name}.weight"], state[f"{name}.bias"], 2, 1)
        return F.leaky_relu(y, 0.1) if leaky else y

    b = frames.shape[0]
    mean = frames.reshape(b, 3, -1).mean(-1).reshape(b, 3, 1, 1, 1)
    x = (frames - mean) / 255.0
    x = torch.cat((x[:, :, 0], x[:, :, 1]), 1)
    c0 = conv("conv0.0", x)
    c1 = conv("conv1_1.0", conv("conv1.0", c0, 2))
    c2 = conv("conv2_1.0", conv("conv2.0", c1, 2))
    c3 = conv("conv3_1.0", conv("conv3.0", c2, 2))
    c4 = conv("conv4_1.0", conv("conv4.0", c3, 2))
    c5 = conv("conv5_1.0", conv("conv5.0", c4, 2))
    c6 = conv("conv6_1.0", conv("conv6.0", c5, 2))
    flow6 = conv("predict_flow6", c6, leaky=False)
    concat5 = torch.cat((c5, deconv("deconv5.0", c6), deconv("upsampled_flow6_to_5", flow6, False)), 1)
    flow5 = conv("predict_flow5", conv("inter_conv5.0", concat5, leaky=False), leaky=False)
    concat4 = torch.cat((c4, deconv("deconv4.0", concat5), deconv("upsampled_flow5_to_4", flow5, False)), 1)
    flow4 = conv("predict_flow4", conv("inter_conv4.0", concat4, leaky=False), leaky=False)
    concat3 = torch.cat((c3, deconv("deconv3.0", concat4), deconv("upsampled_flow4_to_3", flow4, False)), 1)
    flow3 = conv("predict_flow3", conv("inter_conv3.0", concat3, leaky=False), leaky=False)
    concat2 = torch.cat((c2, deconv("deconv2.0", concat3), deconv("upsampled_flow3_to_2", flow3, False)), 1)
    flow2 = conv("predict_flow2", conv("inter_conv2.0", concat2, leaky=False), leaky=False)
    if training:
        return flow2, flow3, flow4, flow5, flow6
    return F.interpolate(flow2 * 20, scale_factor=4, mode="bilinear", align_corners=False)


# --- the stand-in interface (zoo.registry: ModelEntry.standin) ----------------------------


def write_upstream(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write the stand-in checkpoint into ``folder`` (:func:`write_checkpoint`); returns its path."""
    return write_checkpoint(Path(folder) / spec.CHECKPOINT_NAME, seed)


def reference_runner(upstream_file: str | os.PathLike) -> Callable[[np.ndarray], np.ndarray]:
    """NVIDIA's forward on the checkpoint, read once: ``run(frames (B, 2, H, W, 3)) -> flow (B, H, W, 2)`` in pixels."""
    state = torch.load(upstream_file, map_location="cpu", weights_only=True)["state_dict"]

    def run(batch: np.ndarray) -> np.ndarray:
        frames = torch.from_numpy(np.ascontiguousarray(np.asarray(batch, np.float32).transpose(0, 4, 1, 2, 3)))
        with torch.inference_mode():
            return nvidia_forward(state, frames).numpy().transpose(0, 2, 3, 1)

    return run


def reference_forward(upstream_file: str | os.PathLike, batch: np.ndarray) -> np.ndarray:
    """NVIDIA's forward on the checkpoint: frames (B, 2, H, W, 3) RGB in [0, 255] -> flow (B, H, W, 2) in pixels."""
    return reference_runner(upstream_file)(batch)
