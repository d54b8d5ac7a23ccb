"""Inference-only Keras models with batch norm folded into the preceding convolution.

The Keras counterpart of :mod:`zoo.fold`. TensorFlow's graph optimizer folds
batch norm into the convolution weights of a frozen graph, where they are
constants (that is why the upstream ``.pb`` runs fast), but it cannot do so for a
Keras model, whose weights are variables: each batch norm stays a separate
pass over the activations. Folding at load time gives the Keras port the same
arithmetic shape as the upstream graph.

Eval-mode batch norm is ``y = (z - mean) * gamma / sqrt(var + eps) + beta``, so
for ``z = conv(x, W) + b`` it equals ``conv(x, W * s) + (b - mean) * s + beta``
with ``s = gamma / sqrt(var + eps)``; the product is formed in float64 and
rounded once to float32, so the folded model differs by float32 rounding only.

    import zoo.keras
    from zoo.keras.fold import fold_batch_norms
    model = fold_batch_norms(zoo.keras.resnet50_tf_compat(weights="resnet50.safetensors"))
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ..errors import InputTypeError


def _history_refs(node: Any) -> list[list]:
    """Every ``keras_history`` reference ([layer name, node index, tensor index]) inside ``node``."""
    if isinstance(node, dict):
        found = []
        if node.get("class_name") == "__keras_tensor__":
            found.append(node["config"]["keras_history"])
        for value in node.values():
            found += _history_refs(value)
        return found
    if isinstance(node, (list, tuple)):
        return [ref for item in node for ref in _history_refs(item)]
    return []


def _output_refs(config: dict) -> list[list]:
    """The model's output references: one is stored as [name, node, tensor], several as a list of those."""
    outputs = config["output_layers"]
    return [outputs] if isinstance(outputs[0], str) else list(outputs)


def _foldable_pairs(model: keras.Model, config: dict) -> dict[str, str]:
    """{batch norm layer name: conv layer name} for each conv whose only consumer is a channels_last batch norm."""
    consumers: dict[str, int] = {}
    producers: dict[str, list[str]] = {}
    for entry in config["layers"]:
        refs = _history_refs(entry["inbound_nodes"])
        producers[entry["name"]] = [ref[0] for ref in refs]
        for ref in refs:
            consumers[ref[0]] = consumers.get(ref[0], 0) + 1
    for ref in _output_refs(config):
        consumers[ref[0]] = consumers.get(ref[0], 0) + 1
    pairs = {}
    for entry in config["layers"]:
        layer = model.get_layer(entry["name"])
        if not isinstance(layer, keras.layers.BatchNormalization) or len(producers[entry["name"]]) != 1:
            continue
        conv = model.get_layer(producers[entry["name"]][0])
        # Conv2D covers zoo's TorchConv2D; the channel axis must be the one batch norm normalises.
        if (isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
                and not isinstance(conv, keras.layers.Conv2DTranspose)
                and conv.data_format == "channels_last" and layer.axis in (-1, 3)
                and conv.get_config()["activation"] == "linear" and consumers[conv.name] == 1):
            pairs[layer.name] = conv.name
    return pairs


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    """A copy of a layer config with references to renamed layers redirected."""
    if isinstance(node, dict):
        copy = {key: _rename_refs(value, renames) for key, value in node.items()}
        if copy.get("class_name") == "__keras_tensor__":
            history = copy["config"]["keras_history"]
            copy["config"]["keras_history"] = [renames.get(history[0], history[0]), *history[1:]]
        return copy
    if isinstance(node, (list, tuple)):  # get_config() keeps call args as tuples
        return type(node)(_rename_refs(item, renames) for item in node)
    return node


def _folded_weights(conv: keras.layers.Layer, bn: keras.layers.BatchNormalization) -> list[np.ndarray]:
    kernel = np.asarray(conv.kernel, dtype=np.float64)
    bias = np.asarray(conv.bias, dtype=np.float64) if conv.use_bias else 0.0
    mean = np.asarray(bn.moving_mean, dtype=np.float64)
    variance = np.asarray(bn.moving_variance, dtype=np.float64)
    gamma = np.asarray(bn.gamma, dtype=np.float64) if bn.scale else 1.0
    beta = np.asarray(bn.beta, dtype=np.float64) if bn.center else 0.0
    scale = gamma / np.sqrt(variance + bn.epsilon)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # Kernel (kh, kw, in, multiplier): output channel c * multiplier + m.
        kernel = kernel * scale.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale  # (kh, kw, in, out): out is the last axis
    new_bias = (bias - mean) * scale + beta
    return [kernel.astype(np.float32), np.asarray(new_bias, dtype=np.float32)]


def fold_batch_norms(model: keras.Model) -> keras.Model:
    """A new functional model computing ``model(x, training=False)`` with each conv -> batch norm pair folded.

    The folded convolutions keep their layer names and gain a bias; the batch
    norm layers are gone. Layers that are not part of a foldable pair share
    nothing with ``model``: their weights are copied. Only for inference: the
    result has no batch statistics to update.

    Raises:
        TypeError: ``model`` is not a functional Keras model.
    """
    try:
        config = model.get_config() if isinstance(model, keras.Model) else None
    except NotImplementedError:  # a subclassed model without get_config
        config = None
    if not config or "layers" not in config or "output_layers" not in config:
        raise InputTypeError(f"fold_batch_norms needs a functional keras.Model (zoo's Keras ports are), "
                        f"got {type(model).__name__}")
    pairs = _foldable_pairs(model, config)
    layers = []
    for entry in config["layers"]:
        if entry["name"] in pairs:
            continue
        entry = _rename_refs(entry, pairs)
        if entry["name"] in pairs.values():
            entry["config"] = {**entry["config"], "use_bias": True}
        layers.append(entry)
    outputs = [[pairs.get(ref[0], ref[0]), *ref[1:]] for ref in _output_refs(config)]
    folded_config = {**config, "layers": layers, "output_layers": outputs,
                     "name": f"{config['name']}_folded"}
    folded = keras.Model.from_config(folded_config)
    convs = {conv: bn for bn, conv in pairs.items()}
    for layer in folded.layers:
        source = model.get_layer(layer.name)
        if layer.name in convs:
            layer.set_weights(_folded_weights(source, model.get_layer(convs[layer.name])))
        elif source.weights:
            layer.set_weights(source.get_weights())
    folded.trainable = False
    return folded


def count_batch_norms(model: keras.Model) -> int:
    """How many BatchNormalization layers ``model`` has (0 after :func:`fold_batch_norms` on a zoo port)."""
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
