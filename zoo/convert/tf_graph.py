"""Reading a frozen TensorFlow GraphDef (``.pb``) without TensorFlow.

A frozen graph is a protobuf ``GraphDef``; this module decodes the protobuf
wire format directly for the few messages such a graph uses (GraphDef, NodeDef,
AttrValue, TensorProto, TensorShapeProto; field numbers from TensorFlow's
``tensorflow/core/framework/*.proto``), so converting needs neither TensorFlow
nor generated protobuf classes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..errors import FormatError

# tensorflow/core/framework/types.proto DataType -> numpy.
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.float64),
    3: np.dtype(np.int32),
    4: np.dtype(np.uint8),
    5: np.dtype(np.int16),
    6: np.dtype(np.int8),
    9: np.dtype(np.int64),
    10: np.dtype(np.bool_),
    17: np.dtype(np.uint16),
    19: np.dtype(np.float16),
    22: np.dtype(np.uint32),
    23: np.dtype(np.uint64),
}


class _Truncated(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Truncated
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise _Truncated


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value): int for varint/fixed, memoryview for bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise _Truncated
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise _Truncated
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise _Truncated
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise _Truncated
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(value: Any, wire: int) -> list[int]:
    if wire == 0:
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(_signed(v))
    return out


def _packed_fixed(value: Any, wire: int, fmt: str) -> list[float]:
    data = bytes(value)
    return list(struct.unpack(f"<{len(data) // struct.calcsize(fmt)}{fmt}", data))


def _shape(buf: memoryview) -> tuple[int, ...] | None:
    dims: list[int] = []
    for number, _, value in _fields(buf):
        if number == 2:  # dim
            size = 0
            for n, _, v in _fields(value):
                if n == 1:
                    size = _signed(v)
            dims.append(size)
        elif number == 3 and value:  # unknown_rank
            return None
    return tuple(dims)


def _tensor(buf: memoryview) -> np.ndarray:
    dtype_enum, shape, content = 0, (), None
    values: list = []
    for number, wire, value in _fields(buf):
        if number == 1:
            dtype_enum = value
        elif number == 2:
            shape = _shape(value) or ()
        elif number == 4:
            content = bytes(value)
        elif number == 5:
            values += _packed_fixed(value, wire, "f")
        elif number == 6:
            values += _packed_fixed(value, wire, "d")
        elif number in (7, 10, 11):  # int_val, int64_val, bool_val
            values += _packed_varints(value, wire)
    if dtype_enum not in TF_DTYPES:
        raise FormatError(f"unsupported tensor dtype enum {dtype_enum}")
    dtype = TF_DTYPES[dtype_enum]
    count = int(np.prod(shape, dtype=np.int64))
    if content is not None:
        if len(content) != count * dtype.itemsize:
            raise _Truncated
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    array = np.asarray(values, dtype=dtype)
    if array.size == count:
        return array.reshape(shape)
    if array.size and array.size < count:
        # TensorProto repeats the last value to fill the shape.
        return np.concatenate([array, np.full(count - array.size, array[-1], dtype)]).reshape(shape)
    if count == 0:
        return np.zeros(shape, dtype)
    raise _Truncated


def _attr(buf: memoryview) -> Any:
    for number, wire, value in _fields(buf):
        if number == 2:
            return bytes(value).decode("utf-8", "replace")
        if number == 3:
            return _signed(value)
        if number == 4:
            return struct.unpack("<f", bytes(value))[0]
        if number == 5:
            return bool(value)
        if number == 6:
            return TF_DTYPES.get(value, value)
        if number == 7:
            return _shape(value)
        if number == 8:
            return _tensor(value)
        if number == 1:  # list
            items: list = []
            for n, w, v in _fields(value):
                if n == 2:
                    items.append(bytes(v).decode("utf-8", "replace"))
                elif n == 3:
                    items += _packed_varints(v, w)
                elif n == 4:
                    items += _packed_fixed(v, w, "f")
            return items
    return None


@dataclass
class GraphNode:
    """One NodeDef: name, op type, inputs and decoded attributes."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def parse_graph_def(data: bytes, source: str = "GraphDef") -> list[GraphNode]:
    """Decode a serialized ``GraphDef`` into its nodes."""
    nodes: list[GraphNode] = []
    try:
        for number, wire, value in _fields(memoryview(data)):
            if number != 1 or wire != 2:
                continue  # versions, library
            node = GraphNode(name="", op="")
            for n, w, v in _fields(value):
                if n == 1:
                    node.name = bytes(v).decode()
                elif n == 2:
                    node.op = bytes(v).decode()
                elif n == 3:
                    node.inputs.append(bytes(v).decode())
                elif n == 5:
                    key, attr_value = "", None
                    for an, _, av in _fields(v):
                        if an == 1:
                            key = bytes(av).decode()
                        elif an == 2:
                            attr_value = _attr(av)
                    node.attrs[key] = attr_value
            nodes.append(node)
    except (_Truncated, UnicodeDecodeError, struct.error, ValueError) as error:
        raise FormatError(f"{source}: not a valid GraphDef (truncated or corrupt: {error or 'unexpected end'})") from None
    if not nodes or any(not node.name or not node.op for node in nodes):
        raise FormatError(f"{source}: not a valid GraphDef (no nodes, or a node without name or op)")
    return nodes


def read_frozen_graph(path: str | os.PathLike) -> tuple[list[GraphNode], dict[str, np.ndarray]]:
    """Read a frozen ``.pb``: its nodes and ``{Const node name: value}``."""
    with open(path, "rb") as f:
        data = f.read()
    nodes = parse_graph_def(data, source=str(path))
    consts = {node.name: node.attrs["value"] for node in nodes if node.op == "Const" and "value" in node.attrs}
    return nodes, consts
