"""FlowNet2-SD, NVIDIA flownet2-pytorch's small-displacement optical-flow network.

Upstream: NVIDIA/flownet2-pytorch ``models.FlowNet2SD`` (on ``networks.FlowNetSD``
with ``batchNorm=False``), converted by NVIDIA from lmb-freiburg's Caffe
FlowNet2-SD; checkpoint ``FlowNet2-SD_checkpoint.pth.tar`` (60 tensors,
45,371,666 parameters, no batch norm). Input (B, 3, 2, H, W): RGB in [0, 255],
frame 0 then frame 1, H and W multiples of 64. Eval output (B, 2, H, W): flow
in pixels (u, v). In train mode: the five pyramid flows (flow2 .. flow6),
unscaled, as NVIDIA returns them.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputShapeError

# (name, in, out, stride) of the encoder's 3x3 convolutions (padding 1, bias, LeakyReLU(0.1)).
ENCODER = (
    ("conv0", 6, 64, 1),
    ("conv1", 64, 64, 2),
    ("conv1_1", 64, 128, 1),
    ("conv2", 128, 128, 2),
    ("conv2_1", 128, 128, 1),
    ("conv3", 128, 256, 2),
    ("conv3_1", 256, 256, 1),
    ("conv4", 256, 512, 2),
    ("conv4_1", 512, 512, 1),
    ("conv5", 512, 512, 2),
    ("conv5_1", 512, 512, 1),
    ("conv6", 512, 1024, 2),
    ("conv6_1", 1024, 1024, 1),
)
# Decoder level -> (deconv in, deconv out, inter_conv in, inter_conv out); level 6 only predicts.
DECODER = {5: (1024, 512, 1026, 512), 4: (1026, 256, 770, 256), 3: (770, 128, 386, 128), 2: (386, 64, 194, 64)}
DIV_FLOW = 20.0  # FlowNet2SD(div_flow=20): the network predicts flow / 20
RGB_MAX = 255.0  # args.rgb_max
LEAKY_SLOPE = 0.1
SIZE_MULTIPLE = 64


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
        for level, channels in zip((6, 5, 4, 3, 2), (1024, 512, 256, 128, 64)):
            setattr(self, f"predict_flow{level}", nn.Conv2d(channels, 2, 3, 1, 1))
        for level in (6, 5, 4, 3):
            setattr(self, f"upsampled_flow{level}_to_{level - 1}", nn.ConvTranspose2d(2, 2, 4, 2, 1))

    def _check(self, inputs: torch.Tensor) -> None:
        if inputs.dim() != 5 or inputs.shape[1] != 3 or inputs.shape[2] != 2:
            raise InputShapeError(
                f"FlowNet2SD expects (B, 3, 2, H, W): RGB, frame 0 and frame 1; got shape {tuple(inputs.shape)}"
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

    What the Caffe original's ``run-flownet.py`` does: the input is resized
    (bilinear) to ``ceil(H/64)*64 x ceil(W/64)*64``, and the predicted flow is
    resized back to ``H x W`` with u scaled by ``W / W64`` and v by ``H / H64``.
    ``frames``: (B, 3, 2, H, W) RGB in [0, 255]; returns (B, 2, H, W). ``model``
    must be in eval mode.
    """
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


def flownet2_sd(weights: str | os.PathLike | None = None) -> FlowNet2SD:
    """NVIDIA's FlowNet2-SD in PyTorch.

    Args:
        weights: ``None`` for random initialisation, or the path of a converted
            ``.safetensors`` file (``python scripts/convert.py flownet2_sd ...``).

    Returns the model in eval mode when weights are loaded. Input (B, 3, 2, H, W)
    RGB in [0, 255], H and W multiples of 64 (see :func:`estimate_flow`);
    output (B, 2, H, W) flow in pixels.
    """
    model = FlowNet2SD()
    if weights is not None:
        from ..weights import load_torch_weights

        load_torch_weights(model, weights, "flownet2_sd")
        model.eval()
    return model
