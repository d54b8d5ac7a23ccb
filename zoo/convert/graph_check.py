"""Checking a frozen graph's ops against what a PyTorch port computes.

The constants of a frozen graph say nothing about how they are used: a graph
with the stride on another convolution (ResNet-50 v1 instead of v1.5), another
batch norm epsilon, or ``SAME`` where the port pads explicitly has the same
tensors, names and shapes. So a conversion also reads the graph's ops:

* every convolution (``Conv2D``, ``DepthwiseConv2dNative``), found as the op
  that reads its kernel Const (through ``/read`` Identities): op type, data
  format, strides, dilations and padding, where the padding is what the op
  computes (a preceding ``Pad`` node's amounts plus ``VALID``/``EXPLICIT``, or
  ``SAME``, which is a fixed amount only where it does not depend on the input
  size) compared with the port's module;
* every batch norm (``FusedBatchNorm``/``V2``/``V3``, or the unfused
  ``variance + epsilon`` -> ``Rsqrt`` form), found as the op that reads its
  gamma: ``epsilon`` (float32, exactly: TF applies the attr as given, see
  :mod:`zoo.layers.batchnorm`) and inference mode;
* the pooling ops (``MaxPool``, ``AvgPool``, ``Mean``), in graph order: window,
  strides and padding, or the axes of a global mean;
* no convolution, batch norm or pooling op is left that the port does not compute.

The expectations are a model's facts (:mod:`zoo.specs`: its layer list with
strides and paddings, its batch norm epsilon, its pools), paired with the graph
ops through the converter's name map by the model's converter module
(``graph_expectations(name_map)``, which the registry entry names; see
:func:`expectations_for`). This module holds only the generic machinery. The
tests check that each model's expectations are exactly what its PyTorch port's
modules compute.

A TF checkpoint (MobileNet ``--moving-averages``) holds variables only, no ops:
those conversions are not checked here (the release's frozen graph, converted
without ``--moving-averages``, is).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np

from ..errors import ArgumentError, FormatError
from ..layers.padding import tf_same_pad, tf_same_pad_is_static
from ..registry import get_model_entry
from .tf_graph import GraphNode

CONV_OPS = ("Conv2D", "DepthwiseConv2dNative")
FUSED_BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
POOL_OPS = ("MaxPool", "MaxPoolV2", "AvgPool", "Mean")
_PASS_THROUGH = ("Identity",)

# Fixed padding ((top, bottom), (left, right)), or "SAME" where it depends on the input size.
Padding = Union[tuple[tuple[int, int], tuple[int, int]], str]


@dataclass(frozen=True)
class ConvExpect:
    module: str  # the port's module, e.g. "layer2.0.conv2"
    kernel: str  # upstream kernel Const name
    op: str  # "Conv2D" or "DepthwiseConv2dNative"
    strides: tuple[int, int]
    dilations: tuple[int, int]
    padding: Padding


@dataclass(frozen=True)
class BatchNormExpect:
    module: str
    gamma: str  # upstream gamma Const name
    variance: str  # upstream moving-variance Const name
    epsilon: float


@dataclass(frozen=True)
class PoolExpect:
    module: str  # the port's module, or where the port computes it ("forward: mean over H, W")
    op: str  # "MaxPool" / "AvgPool" with a window, or "global mean"
    ksize: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    padding: str = "VALID"  # TF SAME or VALID, for the windowed pools
    total_stride: int = 1  # for "global mean": the backbone's stride (an AvgPool must cover its whole map)


@dataclass(frozen=True)
class GraphExpectations:
    convs: tuple[ConvExpect, ...]
    batch_norms: tuple[BatchNormExpect, ...]
    pools: tuple[PoolExpect, ...]


# --- expectations from a model's facts --------------------------------------------------

NameMap = Mapping[str, tuple[str, object]]  # canonical name -> (upstream name, layout rule)
IntPair = Union[int, Sequence[int]]


def _pair(value: IntPair) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def fixed_padding(before: IntPair, after: IntPair | None = None) -> Padding:
    """Zero padding that does not depend on the input size: ``before`` (H, W) and ``after`` (default: the same)."""
    top, left = _pair(before)
    bottom, right = _pair(before if after is None else after)
    return ((top, bottom), (left, right))


def same_padding(kernel: IntPair, stride: IntPair = 1, dilation: IntPair = 1) -> Padding:
    """What TF ``SAME`` pads: fixed amounts where they do not depend on the input size, else ``"SAME"``."""
    axes = list(zip(_pair(kernel), _pair(stride), _pair(dilation)))
    if not all(tf_same_pad_is_static(k, s, d) for k, s, d in axes):
        return "SAME"
    return tuple(tf_same_pad(1, k, s, d) for k, s, d in axes)  # type: ignore[return-value]


def conv_expect(module: str, name_map: NameMap, op: str, stride: IntPair, padding: Padding,
                dilation: IntPair = 1) -> ConvExpect:
    """The convolution whose kernel is ``module.weight`` in the name map."""
    if op not in CONV_OPS:
        raise ArgumentError(f"{module}: op must be one of {', '.join(CONV_OPS)}, got {op!r}")
    return ConvExpect(module, name_map[f"{module}.weight"][0], op, _pair(stride), _pair(dilation), padding)


def batch_norm_expect(module: str, name_map: NameMap, epsilon: float) -> BatchNormExpect:
    """The batch norm whose gamma and moving variance are ``module.weight`` and ``module.running_var``."""
    return BatchNormExpect(module, name_map[f"{module}.weight"][0], name_map[f"{module}.running_var"][0], float(epsilon))


def expectations_for(model: str, name_map: NameMap) -> GraphExpectations:
    """``model``'s graph expectations: its registry entry's ``graph_expectations(name_map)``."""
    return get_model_entry(model).load("graph_expectations")(name_map)


# --- reading the graph --------------------------------------------------------------


def _producer(name: str) -> str:
    """The node an input string names ("^ctrl", "node:1" -> node)."""
    return name.lstrip("^").split(":")[0]


class _Graph:
    def __init__(self, nodes: list[GraphNode], source: str):
        self.source = source
        self.nodes = nodes
        self.by_name = {node.name: node for node in nodes}
        self.readers: dict[str, list[GraphNode]] = {}
        for node in nodes:
            for name in node.inputs:
                if not name.startswith("^"):
                    self.readers.setdefault(_producer(name), []).append(node)

    def fail(self, node: str, module: str, what: str, expected, found) -> FormatError:
        return FormatError(f"{self.source}: node {node} ({module}): {what} expected {expected}, found {found}")

    def ops_reading(self, name: str) -> list[GraphNode]:
        """The non-Identity ops that read ``name``, looking through Identity chains (``<var>/read``)."""
        out, todo, seen = [], [name], set()
        while todo:
            current = todo.pop()
            for reader in self.readers.get(current, []):
                if reader.name in seen:
                    continue
                seen.add(reader.name)
                if reader.op in _PASS_THROUGH:
                    todo.append(reader.name)
                else:
                    out.append(reader)
        return out

    def input_node(self, node: GraphNode, index: int) -> GraphNode | None:
        """The node feeding input ``index``, looking through Identities."""
        if index >= len(node.inputs):
            return None
        found = self.by_name.get(_producer(node.inputs[index]))
        while found is not None and found.op in _PASS_THROUGH and found.inputs:
            found = self.by_name.get(_producer(found.inputs[0]))
        return found

    def const_value(self, node: GraphNode | None) -> np.ndarray | None:
        if node is None or node.op != "Const" or not isinstance(node.attrs.get("value"), np.ndarray):
            return None
        return node.attrs["value"]


def _spatial(values, node: GraphNode, key: str, graph: _Graph, module: str, default=(1, 1, 1, 1)) -> tuple[int, int]:
    """(H, W) of an NHWC 4-list attr (strides, dilations, ksize); batch and channel entries must be 1."""
    values = list(default if values is None else values)
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        raise graph.fail(node.name, module, key, "[1, h, w, 1]", values)
    return int(values[1]), int(values[2])


def _check_nhwc(node: GraphNode, graph: _Graph, module: str) -> None:
    data_format = node.attrs.get("data_format", "NHWC")
    if data_format != "NHWC":
        raise graph.fail(node.name, module, "data_format", "NHWC", data_format)


def _describe(padding: Padding) -> str:
    if isinstance(padding, str):
        return padding if padding != "SAME" else "SAME (pads depend on the input size)"
    (top, bottom), (left, right) = padding
    return f"pads H ({top}, {bottom}) W ({left}, {right})"


def _graph_padding(
    graph: _Graph, conv: GraphNode, kernel: tuple[int, int], strides: tuple[int, int], dilations: tuple[int, int], module: str
) -> tuple[Padding, str]:
    """(what the op's padding computes, how the graph writes it)."""
    pads = [[0, 0], [0, 0]]
    written: list[str] = []
    before = graph.input_node(conv, 0)
    if before is not None and before.op in ("Pad", "PadV2", "MirrorPad"):
        amounts = graph.const_value(graph.input_node(before, 1))
        if amounts is None or np.shape(amounts) != (4, 2):
            raise FormatError(f"{graph.source}: node {before.name} ({module}): paddings are not a constant 4x2 tensor")
        amounts = np.asarray(amounts).astype(np.int64).tolist()
        written.append(f"{before.op} {before.name} {amounts}")
        if before.op == "MirrorPad":
            return f"MirrorPad {amounts}", " + ".join(written)
        if before.op == "PadV2":
            value = graph.const_value(graph.input_node(before, 2))
            if value is None or np.any(np.asarray(value) != 0):
                return f"PadV2 with value {value}", " + ".join(written)
        if amounts[0] != [0, 0] or amounts[3] != [0, 0]:
            return f"Pad {amounts} (pads batch or channels)", " + ".join(written)
        pads = [list(amounts[1]), list(amounts[2])]
    mode = conv.attrs.get("padding")
    written.append(str(mode))
    if mode == "VALID":
        pass
    elif mode == "EXPLICIT":
        explicit = list(conv.attrs.get("explicit_paddings") or [0] * 8)
        if len(explicit) != 8 or explicit[:2] != [0, 0] or explicit[6:] != [0, 0]:
            return f"EXPLICIT {explicit}", " + ".join(written)
        pads = [[pads[0][0] + explicit[2], pads[0][1] + explicit[3]], [pads[1][0] + explicit[4], pads[1][1] + explicit[5]]]
        written[-1] = f"EXPLICIT {explicit}"
    elif mode == "SAME":
        if not all(tf_same_pad_is_static(k, s, d) for k, s, d in zip(kernel, strides, dilations)):
            return ("SAME" if len(written) == 1 else "a Pad before a size-dependent SAME"), " + ".join(written)
        same = [tf_same_pad(1, k, s, d) for k, s, d in zip(kernel, strides, dilations)]
        pads = [[p[0] + q[0], p[1] + q[1]] for p, q in zip(pads, same)]
    else:
        return f"padding {mode!r}", " + ".join(written)
    return (tuple(pads[0]), tuple(pads[1])), " + ".join(written)  # type: ignore[return-value]


def _kernel_hw(graph: _Graph, node: GraphNode) -> tuple[int, int] | None:
    """(kh, kw) of a kernel: a frozen graph's Const, or an eval graph's variable (its ``shape`` attr)."""
    value = graph.const_value(node)
    shape = np.shape(value) if value is not None else node.attrs.get("shape")
    return (int(shape[0]), int(shape[1])) if shape is not None and len(shape) == 4 else None


def _check_conv(graph: _Graph, spec: ConvExpect) -> GraphNode:
    if spec.kernel not in graph.by_name:
        raise FormatError(f"{graph.source}: missing tensor {spec.kernel} (the kernel of {spec.module})")
    readers = [n for n in graph.ops_reading(spec.kernel) if n.op in CONV_OPS + ("Conv2DBackpropInput", "Conv3D")]
    if len(readers) != 1:
        found = ", ".join(f"{n.name} ({n.op})" for n in readers) or "none"
        raise FormatError(
            f"{graph.source}: {spec.kernel} ({spec.module}): expected one {spec.op} reading it, found {found}"
        )
    conv = readers[0]
    if conv.op != spec.op:
        raise graph.fail(conv.name, spec.module, "op", spec.op, conv.op)
    _check_nhwc(conv, graph, spec.module)
    strides = _spatial(conv.attrs.get("strides"), conv, "strides", graph, spec.module)
    if strides != spec.strides:
        raise graph.fail(conv.name, spec.module, "strides", [1, *spec.strides, 1], [1, *strides, 1])
    dilations = _spatial(conv.attrs.get("dilations"), conv, "dilations", graph, spec.module)
    if dilations != spec.dilations:
        raise graph.fail(conv.name, spec.module, "dilations", [1, *spec.dilations, 1], [1, *dilations, 1])
    kernel = _kernel_hw(graph, graph.by_name[spec.kernel])
    if kernel is None:
        raise FormatError(f"{graph.source}: {spec.kernel} ({spec.module}): not a 4-D kernel")
    padding, written = _graph_padding(graph, conv, kernel, strides, dilations, spec.module)
    if padding != spec.padding:
        found = _describe(padding)
        raise graph.fail(conv.name, spec.module, "padding", _describe(spec.padding), f"{found} (graph: {written})")
    return conv


def _float32(value: float) -> float:
    return float(np.float32(value))


def _check_batch_norm(graph: _Graph, spec: BatchNormExpect) -> tuple[GraphNode, float]:
    if spec.gamma not in graph.by_name:
        raise FormatError(f"{graph.source}: missing tensor {spec.gamma} (the gamma of {spec.module})")
    fused = [n for n in graph.ops_reading(spec.gamma) if n.op in FUSED_BN_OPS]
    if len(fused) > 1:
        raise FormatError(
            f"{graph.source}: {spec.gamma} ({spec.module}): read by several batch norms: {', '.join(n.name for n in fused)}"
        )
    if fused:
        node = fused[0]
        _check_nhwc(node, graph, spec.module)
        if node.attrs.get("is_training", True):
            raise graph.fail(node.name, spec.module, "is_training", False, node.attrs.get("is_training", "unset (True)"))
        epsilon = node.attrs.get("epsilon", 1e-4)  # the op's default
    else:
        # Unfused batch norm (tf.nn.batch_normalization): Rsqrt(variance + epsilon).
        adds = [
            n
            for n in graph.ops_reading(spec.variance)
            if n.op in ("Add", "AddV2") and any(
                (c := graph.const_value(graph.input_node(n, i))) is not None and np.size(c) == 1 for i in (0, 1)
            )
        ]
        if len(adds) != 1:
            raise FormatError(
                f"{graph.source}: {spec.gamma} ({spec.module}): no FusedBatchNorm reads it, "
                f"and {spec.variance} is not read by one `variance + epsilon` Add"
            )
        node = adds[0]
        consts = [graph.const_value(graph.input_node(node, i)) for i in (0, 1)]
        epsilon = float(next(np.asarray(c).reshape(-1)[0] for c in consts if c is not None and np.size(c) == 1))
    if _float32(epsilon) != _float32(spec.epsilon):
        raise graph.fail(node.name, spec.module, "epsilon", f"{_float32(spec.epsilon):.7g}", f"{_float32(epsilon):.7g}")
    return node, _float32(epsilon)


def _input_hw(graph: _Graph) -> tuple[int, int] | None:
    """The static (H, W) of the graph's one NHWC Placeholder, if known."""
    placeholders = [n for n in graph.nodes if n.op == "Placeholder"]
    if len(placeholders) != 1:
        return None
    shape = placeholders[0].attrs.get("shape")
    if not shape or len(shape) != 4 or shape[1] < 1 or shape[2] < 1:
        return None
    return int(shape[1]), int(shape[2])


def _check_pool(graph: _Graph, node: GraphNode, spec: PoolExpect) -> None:
    if spec.op == "global mean":
        if node.op == "Mean":
            axes = graph.const_value(graph.input_node(node, 1))
            found = sorted(np.asarray(axes).reshape(-1).tolist()) if axes is not None else "not a constant"
            if found != [1, 2]:
                raise graph.fail(node.name, spec.module, "reduction axes", [1, 2], found)
            return
        if node.op == "AvgPool":
            # A VALID average pool whose window is the whole feature map is the global mean.
            _check_nhwc(node, graph, spec.module)
            ksize = _spatial(node.attrs.get("ksize"), node, "ksize", graph, spec.module)
            hw = _input_hw(graph)
            if hw is None:
                raise FormatError(
                    f"{graph.source}: node {node.name} ({spec.module}): the input size is not static, so it cannot "
                    f"be told whether the AvgPool window {list(ksize)} covers the whole feature map"
                )
            want = tuple(math.ceil(n / spec.total_stride) for n in hw)
            if ksize != want or node.attrs.get("padding") != "VALID":
                raise graph.fail(
                    node.name,
                    spec.module,
                    "global average pool",
                    f"ksize [1, {want[0]}, {want[1]}, 1] VALID (the whole {want[0]}x{want[1]} map of a {hw[0]}x{hw[1]} input)",
                    f"ksize [1, {ksize[0]}, {ksize[1]}, 1] {node.attrs.get('padding')}",
                )
            return
        raise graph.fail(node.name, spec.module, "op", "Mean or a whole-map AvgPool", node.op)
    if node.op not in (spec.op, spec.op + "V2"):
        raise graph.fail(node.name, spec.module, "op", spec.op, node.op)
    if node.op.endswith("V2"):
        raise FormatError(f"{graph.source}: node {node.name} ({spec.module}): {node.op} (window as a tensor) is not supported")
    _check_nhwc(node, graph, spec.module)
    ksize = _spatial(node.attrs.get("ksize"), node, "ksize", graph, spec.module)
    if ksize != spec.ksize:
        raise graph.fail(node.name, spec.module, "ksize", [1, *spec.ksize, 1], [1, *ksize, 1])
    strides = _spatial(node.attrs.get("strides"), node, "strides", graph, spec.module)
    if strides != spec.strides:
        raise graph.fail(node.name, spec.module, "strides", [1, *spec.strides, 1], [1, *strides, 1])
    if node.attrs.get("padding") != spec.padding:
        raise graph.fail(node.name, spec.module, "padding", spec.padding, node.attrs.get("padding"))


def check_graph(nodes: list[GraphNode], expect: GraphExpectations, source: str | os.PathLike) -> dict[str, str]:
    """Check the graph's convolutions, batch norms and pools against ``expect``; FormatError on any difference.

    Returns a summary for the converted file's metadata (the batch norm
    epsilon(s) the graph stores, which the port computes with).
    """
    graph = _Graph(nodes, os.fspath(source))
    convs = {_check_conv(graph, spec).name for spec in expect.convs}
    checked_bns = [_check_batch_norm(graph, spec) for spec in expect.batch_norms]
    bns = {node.name for node, _ in checked_bns}
    for node in nodes:
        if node.op in CONV_OPS and node.name not in convs:
            raise FormatError(f"{graph.source}: node {node.name}: a {node.op} the port does not compute")
        if node.op in FUSED_BN_OPS and node.name not in bns:
            raise FormatError(f"{graph.source}: node {node.name}: a {node.op} the port does not compute")
    pools = [node for node in nodes if node.op in POOL_OPS]
    if len(pools) != len(expect.pools):
        found = ", ".join(f"{n.name} ({n.op})" for n in pools) or "none"
        wanted = ", ".join(f"{p.op} ({p.module})" for p in expect.pools) or "none"
        raise FormatError(f"{graph.source}: pooling ops expected {wanted}, found {found}")
    for node, spec in zip(pools, expect.pools):
        _check_pool(graph, node, spec)
    epsilons = sorted({epsilon for _, epsilon in checked_bns})  # as the graph stores them (float32)
    return {
        "graph_checked": f"{len(convs)} convolutions, {len(bns)} batch norms, {len(pools)} pooling ops",
        "bn_epsilon": ",".join(f"{e:.7g}" for e in epsilons),
    }
