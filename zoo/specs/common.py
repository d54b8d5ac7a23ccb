"""The record of a name table and the builder every model's table is made with (no framework imports)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..errors import ArgumentError
from ..layouts import BATCHNORM_TORCH_TO_TF, Layout, torch_to_tf_shape

# Keras layer names stand for PyTorch module paths with "." replaced by "-":
# Keras's torch backend registers each layer's variables as torch parameters,
# whose names may not contain ".", and Keras forbids "/" in layer names. No
# PyTorch module path contains "-" (its parts are attribute names and
# indices), so the mapping is reversible.
KERAS_SEPARATOR = "-"


def keras_layer_name(module: str) -> str:
    """The Keras layer name of the PyTorch module path ``module`` (``layer1.0.conv1`` -> ``layer1-0-conv1``)."""
    parts = module.split(".")
    if not all(parts) or any(KERAS_SEPARATOR in part or "/" in part for part in parts):
        raise ArgumentError(
            f"{module!r} is not a PyTorch module path (dot-separated, non-empty parts without "
            f"{KERAS_SEPARATOR!r} or '/')"
        )
    return KERAS_SEPARATOR.join(parts)


def torch_module_path(keras_layer: str) -> str:
    """The inverse of :func:`keras_layer_name`: the PyTorch module path a Keras layer stands for."""
    return keras_layer.replace(KERAS_SEPARATOR, ".")


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a model, as each side names and lays it out."""

    upstream: str  # name in the upstream file (TF variable / Const, or NVIDIA state_dict key)
    torch: str  # PyTorch state_dict key (the canonical name)
    keras_layer: str  # Keras layer that holds it ...
    keras_attr: str  # ... and the layer's attribute (kernel, bias, gamma, ...)
    layout: Layout  # the zoo.layouts rule between PyTorch and TF/Keras
    shape: tuple[int, ...]  # PyTorch shape
    upstream_shape: tuple[int, ...]  # shape in the upstream file
    multiplier: int = 1  # depthwise channel multiplier (DEPTHWISE only)

    @property
    def keras(self) -> tuple[str, str]:
        return self.keras_layer, self.keras_attr

    @property
    def keras_name(self) -> str:
        """The Keras 3 variable path, ``layer/attribute``."""
        return f"{self.keras_layer}/{self.keras_attr}"

    @property
    def keras_shape(self) -> tuple[int, ...]:
        return torch_to_tf_shape(self.layout, self.shape, self.multiplier)


NameTable = tuple[TensorSpec, ...]


class TableBuilder:
    """Collects :class:`TensorSpec` records from a model's layer list.

    ``upstream_layout`` is ``"tf"`` when the upstream file stores TF layouts
    (TF-slim, tf.layers), ``"torch"`` when it stores PyTorch's (NVIDIA, Caffe).
    """

    def __init__(self, upstream_layout: str) -> None:
        if upstream_layout not in ("tf", "torch"):
            raise ValueError(f"upstream_layout must be 'tf' or 'torch', got {upstream_layout!r}")
        self.upstream_layout = upstream_layout
        self.specs: list[TensorSpec] = []

    def add(self, upstream: str, torch: str, keras: tuple[str, str], layout: Layout,
            shape: Iterable[int], multiplier: int = 1) -> None:
        shape = tuple(int(n) for n in shape)
        tf_shape = torch_to_tf_shape(layout, shape, multiplier)
        upstream_shape = tf_shape if self.upstream_layout == "tf" else shape
        self.specs.append(TensorSpec(upstream, torch, keras[0], keras[1], layout, shape, upstream_shape, multiplier))

    def conv(self, module: str, shape: Iterable[int], weight: str, bias: str | None = None,
             layout: Layout = Layout.CONV, multiplier: int = 1) -> None:
        """A convolution / dense layer: ``module.weight`` from upstream ``weight`` (+ ``module.bias`` from ``bias``).

        ``shape`` is the PyTorch weight shape; the bias has the output channels
        (dimension 1 of a transposed convolution's weight, else dimension 0).
        The Keras layer is :func:`keras_layer_name` of ``module``.
        """
        shape = tuple(shape)
        keras_layer = keras_layer_name(module)
        self.add(weight, f"{module}.weight", (keras_layer, "kernel"), layout, shape, multiplier)
        if bias is not None:
            channels = shape[1] if layout is Layout.CONV_TRANSPOSE else shape[0]
            self.add(bias, f"{module}.bias", (keras_layer, "bias"), Layout.VECTOR, (channels,))

    def batch_norm(self, module: str, upstream_scope: str, channels: int) -> None:
        """The four batch-norm tensors; upstream (TF) and Keras share the names gamma, beta, moving_*."""
        keras_layer = keras_layer_name(module)
        for torch_name, tf_name in BATCHNORM_TORCH_TO_TF.items():
            self.add(f"{upstream_scope}/{tf_name}", f"{module}.{torch_name}", (keras_layer, tf_name),
                     Layout.VECTOR, (channels,))

    def build(self) -> NameTable:
        """The table, after checking that no name repeats on any side."""
        for side in ("upstream", "torch", "keras_name"):
            names = [getattr(spec, side) for spec in self.specs]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"name table repeats {side} name(s) {repeated[:3]}")
        return tuple(self.specs)


def torch_shapes(table: NameTable) -> dict[str, tuple[int, ...]]:
    """PyTorch key -> PyTorch shape."""
    return {spec.torch: spec.shape for spec in table}


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape) or "scalar"


def name_lines(table: NameTable, extra: dict[str, str] | None = None, extra_column: str = "also") -> list[str]:
    """One tab-separated line per tensor: upstream name, its shape, PyTorch key, its shape, Keras weight, its shape.

    ``extra`` (PyTorch key -> text) adds a seventh column named ``extra_column``, e.g. FlowNet2-SD's Caffe blobs.
    """
    header = ["# upstream", "upstream_shape", "pytorch", "pytorch_shape", "keras", "keras_shape"]
    if extra is not None:
        header.append(extra_column)
    lines = ["\t".join(header)]
    for spec in table:
        row = [spec.upstream, _dims(spec.upstream_shape), spec.torch, _dims(spec.shape),
               spec.keras_name, _dims(spec.keras_shape)]
        if extra is not None:
            row.append(extra.get(spec.torch, ""))
        lines.append("\t".join(row))
    return lines
