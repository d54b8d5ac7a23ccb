"""Real trained weights: the PyTorch port's backbone vs TFLite running Google's quantized MobileNet-v1.

``../shared/upstream/mobilenet_v1_1.0_224_quant_coral/`` holds a trained,
uint8-quantized MobileNet-v1 backbone (batch norm folded into the convolutions,
output the 1024-wide average pool). Its weights, dequantized, go into the
PyTorch port (batch norm set to identity, carrying the folded biases); TFLite
runs the file itself on the same real images. The two cannot agree to fp32
rounding: TFLite rounds every activation to uint8 (step 6/255 after each
ReLU6) and accumulates in int32. Bars: mean cosine similarity of the pooled
features >= 0.99, and the nearest-neighbour structure of the features (which
other image is most similar) the same for >= 95% of the images.

The bars are shown to have power by a negative control beside the positive
test: the same port with the same weights, but every TF ``SAME`` layer padding
symmetrically as PyTorch does (``benchmarks/variants.py``
``symmetric_padding_model``, the benchmark's control variant; it differs only
in the five stride-2 layers, where TF pads 0 before and 1 after and PyTorch 1
and 1: a one-pixel shift, the commonest porting error). It must fail both
bars. Measured here on the 115 images: the port scores mean cosine 0.9993
(min 0.994) and 96.5% agreement; the symmetric-padding control 0.913
(min 0.84) and 55% agreement, so the 0.99 / 95% bars sit between them with
room on both sides.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import zoo
from parity import ROOT, imagenet_val_bgr, require_shared

TFLITE = "upstream/mobilenet_v1_1.0_224_quant_coral/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
# Bars for the pooled 1024-wide features (see the module docstring for why these values).
COSINE_BAR = 0.99
AGREEMENT_BAR = 0.95


def _dequantize(detail: dict, value: np.ndarray) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _load_tflite_backbone(interpreter) -> zoo.models.mobilenet_v1.MobileNetV1TfCompat:
    """The port with the TFLite file's folded, dequantized weights (TFLite layouts written out here)."""
    details = interpreter.get_tensor_details()
    model = zoo.mobilenet_v1_tf_compat().eval()
    for block_name, block in model.features.named_children():
        scope = "Conv2d_" + block_name[len("conv2d_") :]
        (weight,) = [d for d in details if f"/{scope}/weights_quant/FakeQuantWithMinMaxVars" in d["name"]]
        (bias,) = [d for d in details if d["name"] == f"MobilenetV1/MobilenetV1/{scope}/BatchNorm_Fold/bias"]
        w = _dequantize(weight, interpreter.get_tensor(weight["index"]))
        # TFLite conv (O, kh, kw, I) and depthwise (1, kh, kw, C) -> PyTorch (O, I, kh, kw) / (C, 1, kh, kw).
        w = w.transpose(3, 0, 1, 2) if "depthwise" in scope else w.transpose(0, 3, 1, 2)
        b = _dequantize(bias, interpreter.get_tensor(bias["index"]))
        with torch.no_grad():
            block.conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            # Identity batch norm that adds the folded bias: (x - 0) / sqrt(var + eps) * 1 + b with var + eps = 1.
            block.bn.weight.fill_(1.0)
            block.bn.bias.copy_(torch.from_numpy(b))
            block.bn.running_mean.zero_()
            block.bn.running_var.fill_(1.0 - block.bn.eps)
    return model


def _symmetric_padding_model(model: torch.nn.Module) -> torch.nn.Module:
    """The benchmark's symmetric-padding control variant of ``model`` (benchmarks/variants.py, not a copy)."""
    spec = importlib.util.spec_from_file_location("bench_variants", ROOT / "benchmarks" / "variants.py")
    variants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(variants)
    assert variants.has_tf_same_layers(model)
    control = variants.symmetric_padding_model(model)
    assert not variants.has_tf_same_layers(control)
    return control


@pytest.fixture(scope="module")
def coral(tf):
    """(port with the TFLite weights, the quantized input it saw as NCHW float, TFLite's pooled features)."""
    from zoo.preprocessing import preprocess_mobilenet

    shared = require_shared()
    interpreter = tf.lite.Interpreter(str(shared / TFLITE))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    model = _load_tflite_backbone(interpreter)

    images = imagenet_val_bgr(shared)
    scale, zero_point = inp["quantization"]
    quantized, theirs = [], []
    for image in images:
        x = preprocess_mobilenet(image)
        q = np.clip(np.round(x / scale + zero_point), 0, 255).astype(np.uint8)
        interpreter.set_tensor(inp["index"], q[None])
        interpreter.invoke()
        theirs.append(_dequantize(out, interpreter.get_tensor(out["index"])).reshape(-1))
        quantized.append(q)
    # The port sees exactly the quantized input TFLite saw.
    x_q = (np.stack(quantized).astype(np.float32) - zero_point) * scale
    return model, np.ascontiguousarray(x_q.transpose(0, 3, 1, 2)), np.stack(theirs)


def _pooled_features(model: torch.nn.Module, x_nchw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [
                model.forward_features(torch.from_numpy(batch)).mean(dim=(2, 3)).numpy()
                for batch in np.split(x_nchw, range(32, len(x_nchw), 32))
            ]
        )


def _scores(ours: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, float]:
    """(per-image cosine similarity, fraction of images whose most similar other image is the same)."""
    cosine = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))

    def nearest(features: np.ndarray) -> np.ndarray:
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity.argmax(1)

    return cosine, float((nearest(ours) == nearest(theirs)).mean())


def test_port_computes_the_trained_backbone(coral):
    model, x_q, theirs = coral
    cosine, agreement = _scores(_pooled_features(model, x_q), theirs)
    print(f"port: cosine over {len(theirs)} images: mean {cosine.mean():.4f}, min {cosine.min():.4f}; "
          f"nearest-feature agreement {agreement:.3f}")
    assert cosine.mean() >= COSINE_BAR, f"mean cosine {cosine.mean():.4f} < {COSINE_BAR}"
    assert agreement >= AGREEMENT_BAR, f"nearest-neighbour agreement {agreement:.3f} < {AGREEMENT_BAR}"


def test_symmetric_padding_control_fails_the_bars(coral):
    """Negative control: the same weights with PyTorch-style symmetric padding must fail both bars."""
    model, x_q, theirs = coral
    control = _symmetric_padding_model(model)
    cosine, agreement = _scores(_pooled_features(control, x_q), theirs)
    print(f"symmetric-padding control: cosine mean {cosine.mean():.4f}, min {cosine.min():.4f}; "
          f"nearest-feature agreement {agreement:.3f}")
    assert cosine.mean() < COSINE_BAR, f"the cosine bar cannot tell a padding error: control scores {cosine.mean():.4f}"
    assert agreement < AGREEMENT_BAR, f"the agreement bar cannot tell a padding error: control scores {agreement:.3f}"
