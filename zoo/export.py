"""Export the PyTorch ports to ONNX with static shapes.

The export traces the model at one input shape, so every TF ``SAME`` amount
that :class:`zoo.layers.Conv2dSame` computes from the input size becomes a
constant: symmetric padding lands in the ``Conv``/``MaxPool`` node's own
``pads`` attribute, and only asymmetric padding needs an explicit ``Pad`` node
(one per layer whose TF padding is asymmetric at that size; see
:func:`required_pad_ops`).

    python scripts/export_onnx.py resnet50 --weights resnet50.safetensors --out resnet50.onnx

Needs ``onnx`` and ``onnxscript`` (``pip install -e ".[bench]"``); running the
result needs ``onnxruntime``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import ArgumentError, InputShapeError
from .layers import AvgPool2dSame, Conv2dSame, MaxPool2dSame
from .layers.pool2d_same import max_pool_same_needs_pad
from .layers.padding import tf_same_pad
from .registry import get_model_entry

# Opset 18 is the torch exporter's default; older than 17 is refused.
DEFAULT_OPSET = 18
MIN_OPSET = 17


def example_input(model_name: str, batch: int = 1, size: tuple[int, int] | None = None, seed: int = 0) -> torch.Tensor:
    """A random valid input of the registered ``model_name`` in its PyTorch layout and value range.

    ``size`` is (H, W), by default the model's (:attr:`InputSpec.default_size`).
    Raises :class:`~zoo.errors.InputShapeError` naming the model and its size
    rule for a size it does not take.
    """
    entry = get_model_entry(model_name)
    height, width = size or entry.input.default_size
    try:
        entry.input.check_size(height, width)
    except InputShapeError as error:
        raise InputShapeError(f"{model_name}: {error}") from None
    return torch.from_numpy(entry.input.example(batch, (height, width), seed, framework="torch"))


def required_pad_ops(model: nn.Module, example: torch.Tensor) -> int:
    """How many explicit pad ops TF ``SAME`` padding needs in ``model`` at ``example``'s shape.

    One per ``Conv2dSame`` whose padding is asymmetric at its input size (an
    ONNX ``Conv`` can hold symmetric padding itself, and the exporter keeps
    PyTorch's ``F.pad`` for the rest), one per ``MaxPool2dSame`` that
    :func:`~zoo.layers.pool2d_same.max_pool_same_needs_pad` says needs one (the
    others export as ``MaxPool`` with ``ceil_mode``), two per asymmetric
    ``AvgPool2dSame`` (the input and the count of real cells). Symmetric
    ``nn.Conv2d`` padding needs none.
    """
    counts: list[int] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        pads = [tf_same_pad(n, k, s, d) for n, k, s, d in zip(
            inputs[0].shape[-2:], _pair(module.kernel_size), _pair(module.stride), _pair(getattr(module, "dilation", 1)))]
        asymmetric = any(before != after for before, after in pads)
        if isinstance(module, MaxPool2dSame):
            counts.append(int(max_pool_same_needs_pad(tuple(pads), _pair(module.stride))))
        else:
            counts.append((2 if isinstance(module, AvgPool2dSame) else 1) if asymmetric else 0)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, (Conv2dSame, MaxPool2dSame, AvgPool2dSame))]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return sum(counts)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    out: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    input_name: str = "input",
    output_name: str = "output",
) -> Path:
    """Export ``model`` (put in eval mode) at ``example``'s static shape to ``out``, atomically.

    Uses the ``torch.export``-based exporter (``dynamo=True``, needs
    ``onnxscript``) with its graph optimisation, which folds constants and
    removes identity pads. Weights are stored inside the file. Returns ``out``.
    """
    if opset < MIN_OPSET:
        raise ArgumentError(f"opset must be >= {MIN_OPSET}, got {opset}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    exporter_logger = logging.getLogger("torch.onnx")
    level = exporter_logger.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter
            exporter_logger.setLevel(logging.ERROR)  # "torchvision is not installed" notices
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[input_name],
                output_names=[output_name],
                external_data=False,
                optimize=True,
                verbose=False,
            )
    finally:
        exporter_logger.setLevel(level)
    # Write beside the target and rename, so a failed export leaves no partial file.
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".onnx", delete=False) as tmp:
        temporary = Path(tmp.name)
    try:
        program.save(str(temporary), external_data=False)
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return out


def export_model(
    model_name: str,
    weights: str | os.PathLike | None,
    out: str | os.PathLike,
    batch: int = 1,
    size: tuple[int, int] | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Build the registered ``model_name`` with ``weights`` and export it at (batch, size) to ``out``.

    ``size`` defaults to the model's input size; the graph's input and output
    are named as the registry entry says (:class:`~zoo.registry.OnnxNames`).
    """
    entry = get_model_entry(model_name)
    example = example_input(model_name, batch, size)  # checks the size before building the model
    model = entry.builder("torch")(weights=weights).eval()
    return export_onnx(model, example, out, opset, entry.onnx.input, entry.onnx.output)


def onnx_op_counts(path: str | os.PathLike) -> dict[str, int]:
    """``{op type: count}`` over the main graph of an ONNX file (needs ``onnx``)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def onnx_padding_sites(path: str | os.PathLike) -> dict[str, int]:
    """Where an ONNX file pads: ``Pad`` nodes, and window nodes whose own ``pads`` are asymmetric.

    The exporter's optimiser folds a zero ``Pad`` into the following ``Conv``'s
    ``pads`` attribute (begin and end amounts may differ in ONNX), so an
    asymmetric TF ``SAME`` padding shows up either as a ``Pad`` node or as a
    ``Conv``/``MaxPool`` with asymmetric ``pads``: their sum is the number of
    places the padding rules needed, each counted once.
    """
    import onnx

    sites = {"Pad": 0, "asymmetric_pads": 0}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type == "Pad":
            sites["Pad"] += 1
            continue
        for attribute in node.attribute:
            if attribute.name == "pads" and node.op_type in ("Conv", "MaxPool", "AveragePool"):
                pads = list(attribute.ints)
                half = len(pads) // 2
                if pads[:half] != pads[half:]:
                    sites["asymmetric_pads"] += 1
    return sites


def onnx_opset(path: str | os.PathLike) -> int:
    """The default-domain opset an ONNX file declares."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
