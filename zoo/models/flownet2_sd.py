"""FlowNet2-SD, NVIDIA flownet2-pytorch's small-displacement optical-flow network, in PyTorch.

The facts about the model (upstream checkpoint, layer list, ``div_flow``,
``rgb_max``, the size multiple) are in :mod:`zoo.specs.flownet2_sd`; its input
in its registry entry (``zoo.get_model_entry("flownet2_sd")``). Eval output
(B, 2, H, W): flow in pixels (u, v). In train mode: the five pyramid flows
(flow2 .. flow6), unscaled, as NVIDIA returns them.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputShapeError
from ..hub import resolve_weights
from ..layers.input_checks import check_input_tensor, parameter_dtype
# Architecture constants (encoder, decoder widths, div_flow, rgb_max, slope), shared with Keras.
from ..specs.flownet2_sd import DECODER, DIV_FLOW, ENCODER, LEAKY_SLOPE, PREDICT_FLOW, RGB_MAX, SIZE_MULTIPLE
from ..weights import load_torch_weights


def _conv_leaky(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    # networks.submodules.conv(batchNorm=False): keys NAME.0.weight / NAME.0.bias.
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.LeakyReLU(LEAKY_SLOPE))


def _deconv_leaky(in_channels: int, out_channels: int) -> nn.Sequential:
    # networks.submodules.deconv: ConvTranspose2d(k4, s2, p1) with bias, LeakyReLU(0.1).
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), nn.LeakyReLU(LEAKY_SLOPE))


class FlowNet2SD(nn.Module):
    """FlowNet2-SD with NVIDIA's state-dict names, computing NVIDIA's forward."""

    def __init__(self) -> None:
        super().__init__()
        for name, cin, cout, stride in ENCODER:
            setattr(self, name, _conv_leaky(cin, cout, stride))
        for level, (deconv_in, deconv_out, inter_in, inter_out) in DECODER.items():
            setattr(self, f"deconv{level}", _deconv_leaky(deconv_in, deconv_out))
            # networks.submodules.i_conv(batchNorm=False): a bare conv in a Sequential.
            setattr(self, f"inter_conv{level}", nn.Sequential(nn.Conv2d(inter_in, inter_out, 3, 1, 1)))
        for level, channels in PREDICT_FLOW.items():
            setattr(self, f"predict_flow{level}", nn.Conv2d(channels, 2, 3, 1, 1))
        for level in (6, 5, 4, 3):
            setattr(self, f"upsampled_flow{level}_to_{level - 1}", nn.ConvTranspose2d(2, 2, 4, 2, 1))

    def _check(self, inputs: torch.Tensor) -> None:
        check_input_tensor(inputs, parameter_dtype(self), "(B, 3, 2, H, W)", type(self).__name__)
        if inputs.dim() != 5 or inputs.shape[1] != 3 or inputs.shape[2] != 2:
            hint = " (is it the Keras layout (B, 2, H, W, 3)?)" if inputs.dim() == 5 and inputs.shape[-1] == 3 else ""
            raise InputShapeError(
                f"FlowNet2SD expects (B, 3, 2, H, W): RGB, frame 0 and frame 1; got shape {tuple(inputs.shape)}{hint}"
            )
        height, width = inputs.shape[-2:]
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise InputShapeError(
                f"FlowNet2SD needs H and W to be multiples of 64, got {height}x{width}; "
                "zoo.models.flownet2_sd.estimate_flow resizes any size and rescales the flow back"
            )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        self._check(inputs)
        # Per-sample, per-channel mean over both frames and all pixels.
        rgb_mean = inputs.reshape(*inputs.shape[:2], -1).mean(dim=-1)[..., None, None, None]
        x = (inputs - rgb_mean) / RGB_MAX
        x = torch.cat((x[:, :, 0], x[:, :, 1]), dim=1)
        features = {}
        for name, *_ in ENCODER:
            x = getattr(self, name)(x)
            features[name] = x
        flows = {6: self.predict_flow6(x)}
        concat = x
        for level in (5, 4, 3, 2):
            upsampled = getattr(self, f"upsampled_flow{level + 1}_to_{level}")(flows[level + 1])
            # The deconv takes the previous concat (conv6_1's output at level 5), not the inter_conv output.
            concat = torch.cat((features[f"conv{level}_1"], getattr(self, f"deconv{level}")(concat), upsampled), dim=1)
            flows[level] = getattr(self, f"predict_flow{level}")(getattr(self, f"inter_conv{level}")(concat))
        if self.training:
            return tuple(flows[level] for level in (2, 3, 4, 5, 6))
        return F.interpolate(flows[2] * DIV_FLOW, scale_factor=4, mode="bilinear", align_corners=False)


def estimate_flow(model: FlowNet2SD, frames: torch.Tensor) -> torch.Tensor:
    """Flow for frames of any size: resize to the next multiple of 64, run, resize and rescale back.

    Exactly: ``H64 = ceil(H/64)*64`` and ``W64 = ceil(W/64)*64``; when both
    equal H and W the model runs on ``frames`` untouched. Otherwise each of the
    six frame channels is resized to ``H64 x W64`` by bilinear interpolation
    with half-pixel centres (``F.interpolate(..., align_corners=False)``, no
    antialiasing; source ``(x + 0.5) * W/W64 - 0.5``, clamped at the edges),
    the model's full-resolution eval output (NVIDIA's x4 bilinear upsample of
    flow2 * 20) is resized to ``H x W`` the same way, and u is multiplied by
    ``W / W64``, v by ``H / H64``.

    Shared with the Caffe original (lmb-freiburg/flownet2
    ``scripts/run-flownet.py``: divisor 64, ``ADAPTED_WIDTH = ceil(width /
    divisor) * divisor``, ``SCALE_WIDTH = width / ADAPTED_WIDTH``, the same for
    heights): the target size and the u, v factors. Not the same: its deploy
    net resizes with Caffe's ``Resample`` layer (LINEAR, ``antialias`` on by
    default; ``resample_layer.cu`` samples at ``x * fx + fy / 2 - 0.5``, i.e.
    half-pixel centres only when both axes scale alike, and widens the
    triangle filter when it shrinks), and, as lmb's deploy-generation code
    and ports of the deploy net show, it resizes the quarter-resolution flow
    (flow2 * 20) straight to H x W in one step, where this runs NVIDIA's x4
    upsample first. So for sizes that are not multiples of 64 the flow can
    differ slightly from the Caffe original's; at multiples of 64 both reduce
    to NVIDIA's forward (Caffe's resample is then the identity on the input
    and a half-pixel bilinear x4 on the output).

    ``frames``: (B, 3, 2, H, W) RGB in [0, 255]; returns (B, 2, H, W). ``model``
    must be in eval mode.
    """
    check_input_tensor(frames, parameter_dtype(model), "(B, 3, 2, H, W)", "estimate_flow")
    if frames.dim() != 5 or frames.shape[1] != 3 or frames.shape[2] != 2:
        raise InputShapeError(f"estimate_flow expects (B, 3, 2, H, W), got shape {tuple(frames.shape)}")
    batch, _, _, height, width = frames.shape
    h64 = math.ceil(height / SIZE_MULTIPLE) * SIZE_MULTIPLE
    w64 = math.ceil(width / SIZE_MULTIPLE) * SIZE_MULTIPLE
    if (h64, w64) == (height, width):
        return model(frames)
    flat = frames.reshape(batch, 6, height, width)
    resized = F.interpolate(flat, size=(h64, w64), mode="bilinear", align_corners=False)
    flow = model(resized.reshape(batch, 3, 2, h64, w64))
    flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    scale = torch.tensor([width / w64, height / h64], dtype=flow.dtype, device=flow.device)
    return flow * scale[None, :, None, None]


def flownet2_sd(weights: str | os.PathLike | None = None, cast_weights: bool = False) -> FlowNet2SD:
    """NVIDIA's FlowNet2-SD in PyTorch.

    Args:
        weights: ``None`` for random initialisation; the path of a converted
            ``.safetensors`` file (``python scripts/convert.py flownet2_sd ...``);
            or a weights tag (``"nvidia"``), whose file :func:`zoo.hub.resolve_weights`
            finds in the cache, downloads or converts.
        cast_weights: cast a weights file of another dtype (float16, int8, ...)
            to float32 instead of refusing it.

    Returns the model in eval mode, with or without weights (``model.train()``
    switches to the five multi-scale training outputs). Input: a float32
    ``torch.Tensor`` (B, 3, 2, H, W), RGB in [0, 255], H and W multiples of 64
    (see :func:`estimate_flow`); a NumPy array or another dtype raises
    :class:`zoo.errors.InputTypeError`. Output (B, 2, H, W) flow in pixels.
    """
    model = FlowNet2SD()
    if weights is not None:
        load_torch_weights(model, resolve_weights(weights, "flownet2_sd"), cast=cast_weights)
    return model.eval()
