"""Real trained weights: the PyTorch port's backbone vs TFLite running Google's quantized MobileNet-v1.

``../shared/upstream/mobilenet_v1_1.0_224_quant_coral/`` holds a trained,
uint8-quantized MobileNet-v1 backbone (batch norm folded into the convolutions,
output the 1024-wide average pool). Its weights, dequantized, go into the
PyTorch port (batch norm set to identity, carrying the folded biases); TFLite
runs the file itself on the same real images. The two cannot agree to fp32
rounding: TFLite rounds every activation to uint8 (step 6/255 after each
ReLU6) and accumulates in int32. Bars: mean cosine similarity of the pooled
features >= 0.99, and the nearest-neighbour structure of the features (which
other image is most similar) the same for >= 95% of the images. A port with a
padding, layout or stride error fails both by a wide margin.
"""

from __future__ import annotations

import numpy as np
import torch

import zoo
from parity import imagenet_val_bgr, require_shared

TFLITE = "upstream/mobilenet_v1_1.0_224_quant_coral/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


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


def test_port_computes_the_trained_backbone(tf):
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
    theirs = np.stack(theirs)
    # The port sees exactly the quantized input TFLite saw.
    x_q = (np.stack(quantized).astype(np.float32) - zero_point) * scale
    with torch.no_grad():
        ours = np.concatenate(
            [
                model.forward_features(torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))))
                .mean(dim=(2, 3))
                .numpy()
                for batch in np.split(x_q, range(32, len(x_q), 32))
            ]
        )

    cosine = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    print(f"cosine similarity over {len(images)} images: mean {cosine.mean():.4f}, min {cosine.min():.4f}")
    assert cosine.mean() >= 0.99, f"mean cosine {cosine.mean():.4f} < 0.99"

    def nearest(features: np.ndarray) -> np.ndarray:
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity.argmax(1)

    agreement = float((nearest(ours) == nearest(theirs)).mean())
    print(f"nearest-feature match agreement: {agreement:.3f}")
    assert agreement >= 0.95, f"nearest-neighbour agreement {agreement:.3f} < 0.95"
