"""FlowNet2-SD (NVIDIA flownet2-pytorch, from lmb-freiburg's Caffe model): architecture, upstream facts, name table.

The upstream names are NVIDIA's ``state_dict`` keys, which are also the
canonical (PyTorch) names; lmb-freiburg's Caffe ``.caffemodel.h5`` holds the
same tensors as ``data/<layer>/0`` (weights) and ``data/<layer>/1`` (biases)
under the Caffe layer names of :data:`CAFFE_BLOBS`, in PyTorch's layouts,
with conv0 reading BGR frames (:data:`CONV0_BGR_TO_RGB`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..layouts import Layout
from .common import NameTable, TableBuilder

# --- architecture (NVIDIA networks/FlowNetSD.py, batchNorm=False) --------------------------
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
# Pyramid level -> input channels of its predict_flow head (3x3, 2 outputs).
PREDICT_FLOW = {6: 1024, 5: 512, 4: 256, 3: 128, 2: 64}
DIV_FLOW = 20.0  # FlowNet2SD(div_flow=20): the network predicts flow / 20
RGB_MAX = 255.0  # args.rgb_max
LEAKY_SLOPE = 0.1
SIZE_MULTIPLE = 64
CONV_KERNEL, DECONV_KERNEL = 3, 4  # convs: k3 p1; deconvs: ConvTranspose2d(k4, s2, p1)

# --- the upstream files ------------------------------------------------------------------
CHECKPOINT_NAME = "FlowNet2-SD_checkpoint.pth.tar"
CHECKPOINT_KEYS = {"epoch", "state_dict", "best_EPE", "arch"}  # torch.save dict; 'arch' in training checkpoints
CAFFE_H5_NAME = "FlowNet2-SD_weights.caffemodel.h5"
CAFFE_WEIGHT_BLOB, CAFFE_BIAS_BLOB = "0", "1"
# Caffe's conv0 reads each frame as BGR, NVIDIA's as RGB: NVIDIA's conv0 weight
# is Caffe's with input channels B0 G0 R0 B1 G1 R1 taken in this order (and
# the other way round: the permutation is its own inverse).
CONV0_BGR_TO_RGB = (2, 1, 0, 5, 4, 3)


@dataclass(frozen=True)
class ConvLayer:
    """A module holding one weight and one bias, in NVIDIA's registration order."""

    module: str  # NVIDIA module, e.g. conv1_1.0, predict_flow6 (Keras layer: keras_layer_name, conv1_1-0)
    caffe: str  # lmb-freiburg's Caffe layer
    kind: str  # "conv" (Conv2d) or "deconv" (ConvTranspose2d)
    in_channels: int
    out_channels: int
    stride: int


def _layers() -> tuple[ConvLayer, ...]:
    # NVIDIA's conversion matched Caffe layers to modules: Convolution1..5 are the flow
    # heads predict_flow6..2, interconv5..2 the inter_conv5..2, upsample_flow6to5..3to2
    # the flow upsamplers; the rest keep their names.
    layers = [ConvLayer(f"{name}.0", name, "conv", cin, cout, stride) for name, cin, cout, stride in ENCODER]
    for level, (deconv_in, deconv_out, inter_in, inter_out) in DECODER.items():
        layers.append(ConvLayer(f"deconv{level}.0", f"deconv{level}", "deconv", deconv_in, deconv_out, 2))
        layers.append(ConvLayer(f"inter_conv{level}.0", f"interconv{level}", "conv", inter_in, inter_out, 1))
    for index, (level, channels) in enumerate(PREDICT_FLOW.items(), start=1):
        layers.append(ConvLayer(f"predict_flow{level}", f"Convolution{index}", "conv", channels, 2, 1))
    for level in (6, 5, 4, 3):
        layers.append(ConvLayer(f"upsampled_flow{level}_to_{level - 1}", f"upsample_flow{level}to{level - 1}",
                                "deconv", 2, 2, 2))
    return tuple(layers)


LAYERS = _layers()  # the 30 weighted modules, in FlowNet2SD's registration order
CONV0_WEIGHT = f"{LAYERS[0].module}.weight"


def _table() -> NameTable:
    table = TableBuilder("torch")
    for layer in LAYERS:
        if layer.kind == "conv":
            shape = (layer.out_channels, layer.in_channels, CONV_KERNEL, CONV_KERNEL)
            layout = Layout.CONV
        else:
            shape = (layer.in_channels, layer.out_channels, DECONV_KERNEL, DECONV_KERNEL)
            layout = Layout.CONV_TRANSPOSE
        weight, bias = f"{layer.module}.weight", f"{layer.module}.bias"
        table.conv(layer.module, shape, weight, bias=bias, layout=layout)
    return table.build()


TABLE: NameTable = _table()  # the 60 tensors of the checkpoint's state_dict
# NVIDIA state_dict key -> (Caffe layer, blob) in the .caffemodel.h5's data/ group.
CAFFE_BLOBS: dict[str, tuple[str, str]] = {
    f"{layer.module}.{suffix}": (layer.caffe, blob)
    for layer in LAYERS
    for suffix, blob in (("weight", CAFFE_WEIGHT_BLOB), ("bias", CAFFE_BIAS_BLOB))
}


def caffe_layer_name(module: str) -> str:
    """The Caffe layer that holds the weights of NVIDIA's module ``module`` (e.g. ``conv1_1.0``)."""
    for layer in LAYERS:
        if layer.module == module:
            return layer.caffe
    raise KeyError(f"FlowNet2-SD has no weighted module {module!r}")
