"""Reading a frozen TensorFlow GraphDef (``.pb``) without TensorFlow.

A frozen graph is a protobuf ``GraphDef``; this module decodes the protobuf
wire format directly for the few messages such a graph uses (GraphDef, NodeDef,
AttrValue, TensorProto, TensorShapeProto; field numbers from TensorFlow's
``tensorflow/core/framework/*.proto``), so converting needs neither TensorFlow
nor generated protobuf classes.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..errors import FormatError
from .limits import zoo_max_tensor_bytes

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


class _Corrupt(Exception):
    """A decoding failure: what was wrong, and the byte offset in the file where it was found."""

    def __init__(self, reason: str, offset: int):
        super().__init__(f"{reason} at byte {offset}")
        self.reason, self.offset = reason, offset


class _Truncated(_Corrupt):
    pass


_WIRE_NAMES = {0: "varint", 1: "64-bit", 2: "length-delimited", 5: "32-bit"}


def _varint(buf: memoryview, pos: int, base: int = 0) -> tuple[int, int]:
    result = shift = 0
    start = pos
    while True:
        if pos >= len(buf):
            raise _Truncated("varint runs past the end of its message", base + start)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & ((1 << 64) - 1), pos
        shift += 7
        if shift >= 70:
            raise _Corrupt("varint longer than 10 bytes", base + start)


def _fields(buf: memoryview, base: int = 0) -> Iterator[tuple[int, int, Any, int]]:
    """Yield (field number, wire type, value, offset of value in the file).

    The value is an int for a varint, a memoryview for 64-bit, 32-bit and
    length-delimited fields. Every declared length is checked against the bytes
    that remain before anything is sliced.
    """
    pos = 0
    while pos < len(buf):
        key_at = pos
        key, pos = _varint(buf, pos, base)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Corrupt("field number 0", base + key_at)
        at = base + pos
        if wire == 0:
            value, pos = _varint(buf, pos, base)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise _Truncated(f"field {number} needs {size} bytes, {len(buf) - pos} remain", at)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 2:
            length, pos = _varint(buf, pos, base)
            at = base + pos
            if length > len(buf) - pos:
                raise _Truncated(f"field {number} declares {length} bytes, {len(buf) - pos} remain", at)
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise _Corrupt(f"field {number} has wire type {wire} (groups and unknown types are not used by GraphDef)", at)
        yield number, wire, value, at


def _need(wire: int, allowed: tuple[int, ...], number: int, what: str, at: int) -> None:
    if wire not in allowed:
        want = " or ".join(_WIRE_NAMES[w] for w in allowed)
        raise _Corrupt(f"{what} (field {number}) is {_WIRE_NAMES.get(wire, wire)}, expected {want}", at)


def _bytes(value: Any, wire: int, number: int, what: str, at: int) -> bytes:
    _need(wire, (2,), number, what, at)
    return bytes(value)


def _text(value: Any, wire: int, number: int, what: str, at: int) -> str:
    raw = _bytes(value, wire, number, what, at)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Corrupt(f"{what} (field {number}) is not UTF-8 text", at) from None


def _int(value: Any, wire: int, number: int, what: str, at: int) -> int:
    _need(wire, (0,), number, what, at)
    return value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(value: Any, wire: int, number: int, what: str, at: int, limit: int) -> list[int]:
    _need(wire, (0, 2), number, what, at)
    if wire == 0:
        return [_signed(value)]
    if len(value) > limit:  # each varint takes at least one byte
        raise _Corrupt(f"{what} (field {number}) holds up to {len(value)} values, more than the {limit} allowed", at)
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos, at)
        out.append(_signed(v))
    return out


def _packed_fixed(value: Any, wire: int, number: int, what: str, at: int, dtype: str) -> np.ndarray:
    size = np.dtype(dtype).itemsize
    _need(wire, (2, 5 if size == 4 else 1), number, what, at)
    if len(value) % size:
        raise _Corrupt(f"{what} (field {number}) holds {len(value)} bytes, not a multiple of {size}", at)
    return np.frombuffer(bytes(value), dtype=dtype)


def _shape(buf: memoryview, base: int) -> tuple[int, ...] | None:
    dims: list[int] = []
    for number, wire, value, at in _fields(buf, base):
        if number == 2:  # dim
            size = 0
            _need(wire, (2,), number, "shape dim", at)
            for n, w, v, a in _fields(value, at):
                if n == 1:
                    size = _signed(_int(v, w, n, "dim size", a))
            if size < -1:
                raise _Corrupt(f"shape dim of size {size}", at)
            dims.append(size)
        elif number == 3 and _int(value, wire, number, "unknown_rank", at):
            return None
    return tuple(dims)


def _tensor(buf: memoryview, base: int, max_bytes: int) -> np.ndarray:
    dtype_enum, shape, content, content_at = 0, (), None, base
    chunks: list[np.ndarray] = []
    held = 0
    for number, wire, value, at in _fields(buf, base):
        chunk = None
        if number == 1:
            dtype_enum = _int(value, wire, number, "tensor dtype", at)
        elif number == 2:
            _need(wire, (2,), number, "tensor_shape", at)
            shape = _shape(value, at) or ()
        elif number == 4:
            content, content_at = _bytes(value, wire, number, "tensor_content", at), at
        elif number == 5:
            chunk = _packed_fixed(value, wire, number, "float_val", at, "<f4")
        elif number == 6:
            chunk = _packed_fixed(value, wire, number, "double_val", at, "<f8")
        elif number in (7, 10, 11):  # int_val, int64_val, bool_val
            chunk = np.asarray(_packed_varints(value, wire, number, "int_val", at, max_bytes // 8), dtype=np.int64)
        if chunk is not None:
            held += chunk.size
            if held * 8 > max_bytes:
                raise _Corrupt(f"tensor holds more than {max_bytes // 8} values", at)
            chunks.append(chunk)
    if dtype_enum not in TF_DTYPES:
        raise _Corrupt(f"unsupported tensor dtype enum {dtype_enum}", base)
    dtype = TF_DTYPES[dtype_enum]
    if any(n < 0 for n in shape):
        raise _Corrupt(f"tensor shape {shape} has an unknown (negative) dimension", base)
    count = math.prod(shape)
    if count * dtype.itemsize > max_bytes:
        raise _Corrupt(
            f"tensor of shape {shape} and dtype {dtype} declares {count * dtype.itemsize} bytes, "
            f"more than the {max_bytes} bytes of the largest tensor expected",
            base,
        )
    if content is not None:
        if len(content) != count * dtype.itemsize:
            raise _Corrupt(
                f"tensor_content holds {len(content)} bytes, shape {shape} of {dtype} needs {count * dtype.itemsize}",
                content_at,
            )
        return np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    try:
        values = np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype)
    except (OverflowError, ValueError, TypeError):  # pragma: no cover - int64 and floats cast to any dtype
        raise _Corrupt(f"tensor values do not fit dtype {dtype}", base) from None
    if values.size == count:
        return values.reshape(shape)
    if values.size and values.size < count:
        # TensorProto repeats the last value to fill the shape (count is within the ceiling checked above).
        return np.concatenate([values, np.full(count - values.size, values[-1], dtype)]).reshape(shape)
    if count == 0:
        return np.zeros(shape, dtype)
    if not values.size:
        raise _Corrupt(f"tensor of shape {shape} holds no values", base)
    raise _Corrupt(f"tensor holds {values.size} values, more than the {count} of its shape {shape}", base)


def _attr(buf: memoryview, base: int, max_bytes: int) -> Any:
    for number, wire, value, at in _fields(buf, base):
        if number == 2:
            _need(wire, (2,), number, "attr s", at)
            return bytes(value).decode("utf-8", "replace")
        if number == 3:
            return _signed(_int(value, wire, number, "attr i", at))
        if number == 4:
            _need(wire, (5,), number, "attr f", at)
            return struct.unpack("<f", bytes(value))[0]
        if number == 5:
            return bool(_int(value, wire, number, "attr b", at))
        if number == 6:
            value = _int(value, wire, number, "attr type", at)
            return TF_DTYPES.get(value, value)
        if number == 7:
            _need(wire, (2,), number, "attr shape", at)
            return _shape(value, at)
        if number == 8:
            _need(wire, (2,), number, "attr tensor", at)
            return _tensor(value, at, max_bytes)
        if number == 1:  # list
            _need(wire, (2,), number, "attr list", at)
            items: list = []
            for n, w, v, a in _fields(value, at):
                if n == 2:
                    _need(w, (2,), n, "list s", a)
                    items.append(bytes(v).decode("utf-8", "replace"))
                elif n == 3:
                    items += _packed_varints(v, w, n, "list i", a, max_bytes // 8)
                elif n == 4:
                    items += _packed_fixed(v, w, n, "list f", a, "<f4").tolist()
            return items
    return None


@dataclass
class GraphNode:
    """One NodeDef: name, op type, inputs and decoded attributes."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def parse_graph_def(data: bytes, source: str = "GraphDef", max_tensor_bytes: int | None = None) -> list[GraphNode]:
    """Decode a serialized ``GraphDef`` into its nodes.

    ``max_tensor_bytes`` caps what one Const may declare (default: the largest
    tensor of any zoo model with headroom, :func:`zoo.convert.limits.zoo_max_tensor_bytes`); every length and count is also
    checked against the bytes that remain. A malformed graph is a
    :class:`FormatError` naming ``source``, what was wrong and the byte offset.
    """
    max_bytes = zoo_max_tensor_bytes() if max_tensor_bytes is None else int(max_tensor_bytes)
    nodes: list[GraphNode] = []
    try:
        for number, wire, value, at in _fields(memoryview(data)):
            if number != 1:
                continue  # versions, library
            _need(wire, (2,), number, "GraphDef node", at)
            node = GraphNode(name="", op="")
            for n, w, v, a in _fields(value, at):
                if n == 1:
                    node.name = _text(v, w, n, "node name", a)
                elif n == 2:
                    node.op = _text(v, w, n, "node op", a)
                elif n == 3:
                    node.inputs.append(_text(v, w, n, "node input", a))
                elif n == 5:
                    _need(w, (2,), n, "node attr", a)
                    key, attr_value = "", None
                    for an, aw, av, aa in _fields(v, a):
                        if an == 1:
                            key = _text(av, aw, an, "attr key", aa)
                        elif an == 2:
                            _need(aw, (2,), an, "attr value", aa)
                            attr_value = _attr(av, aa, max_bytes)
                    node.attrs[key] = attr_value
            if not node.name or not node.op:
                raise _Corrupt(f"node {len(nodes)} has no {'name' if not node.name else 'op'}", at)
            nodes.append(node)
    except _Truncated as error:
        raise FormatError(
            f"{source}: not a valid GraphDef (truncated or corrupt at byte {error.offset}: {error.reason}; "
            f"the file has {len(data)} bytes)"
        ) from None
    except _Corrupt as error:
        raise FormatError(f"{source}: not a valid GraphDef (corrupt at byte {error.offset}: {error.reason})") from None
    if not nodes:
        raise FormatError(f"{source}: not a valid GraphDef (no nodes in its {len(data)} bytes)")
    return nodes


def read_frozen_graph(
    path: str | os.PathLike, max_tensor_bytes: int | None = None
) -> tuple[list[GraphNode], dict[str, np.ndarray]]:
    """Read a frozen ``.pb``: its nodes and ``{Const node name: value}``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise FormatError(f"{path}: is a folder, expected a frozen graph .pb file") from None
    except OSError as error:
        raise FormatError(f"{path}: cannot read the frozen graph ({error.strerror or error})") from None
    nodes = parse_graph_def(data, source=str(path), max_tensor_bytes=max_tensor_bytes)
    consts = {node.name: node.attrs["value"] for node in nodes if node.op == "Const" and "value" in node.attrs}
    return nodes, consts
