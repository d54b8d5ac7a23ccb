"""Checking a PyTorch checkpoint (``torch.save``) before ``torch.load`` reads it.

``torch.load(weights_only=True)`` refuses to run code, but it trusts the sizes a
file declares: a pickle string's length is read with ``read(length)`` and a
storage of ``numel`` elements is allocated before its bytes are read. So the
file is first walked here without building anything: its format (zip, or the
legacy format NVIDIA's checkpoints use), every pickle opcode's declared length
against the bytes that remain, and every storage's declared size against the
bytes that remain and the model's largest tensor (with headroom).
"""

from __future__ import annotations

import io
import os
import pickletools
import struct
import zipfile
from typing import Any, BinaryIO

from ..errors import FormatError

# torch/serialization.py: the legacy format starts with pickle.dump(MAGIC_NUMBER, protocol=2).
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")
ZIP_PREFIX = b"PK\x03\x04"
_ELEMENT_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}


class _Overrun(Exception):
    pass


class _Bounded(io.RawIOBase):
    """A read-only view of ``raw`` that refuses any read longer than the bytes that remain."""

    def __init__(self, raw: BinaryIO, size: int):
        self.raw, self.size = raw, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        remaining = self.size - self.raw.tell()
        if n is None or n < 0:
            n = remaining
        if n > remaining:
            if remaining <= 0:
                raise _Overrun(f"the file ends at byte {self.raw.tell()}, inside a pickle")
            raise _Overrun(f"a field declares {n} bytes at byte {self.raw.tell()}, {remaining} remain")
        return self.raw.read(n)

    def readline(self, limit: int = -1) -> bytes:
        return self.raw.readline(limit if limit >= 0 else self.size - self.raw.tell())

    def tell(self) -> int:
        return self.raw.tell()


class _Obj:
    """A placeholder for anything the walk does not need to know (dicts, lists, rebuilt tensors)."""


_PUSH_ARG = {
    "BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT",
    "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "BINSTRING", "SHORT_BINSTRING", "STRING",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
}
_PUSH_NEW = {"EMPTY_DICT", "EMPTY_LIST", "EMPTY_SET"}


def _persistent_ids(stream: BinaryIO) -> list[Any]:
    """Walk one pickle (to its STOP) and return the persistent ids it loads, building nothing else."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    pids: list[Any] = []

    def pop_mark() -> list[Any]:
        if not marks:
            raise ValueError("pickle pops a mark it never set")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    def pop(n: int = 1) -> list[Any]:
        if len(stack) < n or (marks and len(stack) - n < marks[-1]):
            raise ValueError("pickle stack underflow")
        items = stack[len(stack) - n:]
        del stack[len(stack) - n:]
        return items

    for opcode, arg, pos in pickletools.genops(stream):
        name = opcode.name
        if name in _PUSH_ARG:
            stack.append(arg)
        elif name in _PUSH_NEW:
            stack.append(_Obj())
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "GLOBAL":
            stack.append(("global", arg))
        elif name == "STACK_GLOBAL":
            module, qualname = pop(2)
            stack.append(("global", f"{module} {qualname}"))
        elif name == "MARK":
            marks.append(len(stack))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            if not stack:
                raise ValueError("pickle memoizes an empty stack")
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            if not stack:
                raise ValueError("pickle memoizes an empty stack")
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            if arg not in memo:
                raise ValueError(f"pickle refers to memo entry {arg} it never stored")
            stack.append(memo[arg])
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            stack.append(tuple(pop(int(name[-1]))))
        elif name in ("LIST", "DICT", "FROZENSET", "OBJ", "INST"):
            pop_mark()
            stack.append(_Obj())
        elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
            pop_mark()
        elif name == "APPEND":
            pop(1)
        elif name == "SETITEM":
            pop(2)
        elif name == "BUILD":
            pop(1)
        elif name in ("REDUCE", "NEWOBJ"):
            pop(2)
            stack.append(_Obj())
        elif name == "NEWOBJ_EX":
            pop(3)
            stack.append(_Obj())
        elif name == "BINPERSID":
            pids.append(pop(1)[0])
            stack.append(_Obj())
        elif name == "PERSID":
            pids.append(arg)
            stack.append(_Obj())
        elif name == "POP":
            pop(1)
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(pop(1)[0])
            stack.append(stack[-1])
        elif name in ("PROTO", "FRAME", "STOP"):
            pass
        else:
            raise ValueError(f"unexpected pickle opcode {name} at byte {pos}")
    return pids


def _storages(pids: list[Any], path: str) -> dict[str, int]:
    """``{storage key: declared bytes}`` from the persistent ids ``('storage', type, key, location, numel)``."""
    sizes: dict[str, int] = {}
    for pid in pids:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise FormatError(f"{path}: holds a persistent object other than a tensor storage ({type(pid).__name__})")
        kind, key, numel = pid[1], pid[2], pid[4]
        type_name = kind[1].rsplit(" ", 1)[-1] if isinstance(kind, tuple) and len(kind) == 2 else str(kind)
        if type_name not in _ELEMENT_SIZES:
            raise FormatError(f"{path}: a storage of type {type_name!r}, expected a tensor storage type")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0 or not isinstance(key, str):
            raise FormatError(f"{path}: a storage declares {numel!r} elements, expected a count")
        sizes[key] = numel * _ELEMENT_SIZES[type_name]
    return sizes


def _check_sizes(sizes: dict[str, int], room: int, max_tensor_bytes: int, path: str) -> None:
    for key, nbytes in sizes.items():
        if nbytes > max_tensor_bytes:
            raise FormatError(
                f"{path}: storage {key} declares {nbytes} bytes, more than the largest tensor expected "
                f"({max_tensor_bytes} bytes)"
            )
    total = sum(sizes.values())
    if total > room:
        raise FormatError(f"{path}: truncated or corrupt: its storages declare {total} bytes, only {room} remain")


def check_checkpoint_file(path: str | os.PathLike, max_tensor_bytes: int) -> None:
    """Refuse a file that is not a ``torch.save`` checkpoint, or whose declared sizes its bytes cannot hold.

    Raises :class:`FormatError` naming ``path``; builds no tensor.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as raw:
        head = raw.read(len(LEGACY_PREFIX))
        if head.startswith(ZIP_PREFIX):
            _check_zip(path, size, max_tensor_bytes)
            return
        if head != LEGACY_PREFIX:
            shown = head[:8].hex(" ") if head else "nothing (the file is empty)"
            raise FormatError(
                f"{path}: not a PyTorch checkpoint (expected torch.save's zip archive or legacy format, "
                f"found {size} bytes starting with {shown})"
            )
        raw.seek(0)
        stream = _Bounded(raw, size)
        try:
            for _ in range(3):  # magic number, protocol version, system info
                _persistent_ids(stream)
            sizes = _storages(_persistent_ids(stream), path)
            _persistent_ids(stream)  # the storage keys, in the order their bytes follow
        except _Overrun as error:
            raise FormatError(f"{path}: truncated or corrupt PyTorch checkpoint ({error})") from None
        except (ValueError, EOFError, struct.error, KeyError, TypeError, IndexError, UnicodeDecodeError) as error:
            reason = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
            raise FormatError(f"{path}: truncated or corrupt PyTorch checkpoint at byte {raw.tell()} ({reason})") from None
        # Each storage's bytes follow, each after an 8-byte element count.
        _check_sizes(sizes, size - raw.tell() - 8 * len(sizes), max_tensor_bytes, path)


def _check_zip(path: str, size: int, max_tensor_bytes: int) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            for info in infos.values():
                if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                    raise FormatError(f"{path}: zip member {info.filename} is compressed; torch.save stores members")
                if info.header_offset + info.file_size > size:
                    raise FormatError(
                        f"{path}: truncated or corrupt: zip member {info.filename} declares {info.file_size} bytes "
                        f"at byte {info.header_offset}, the file has {size}"
                    )
            pickles = [name for name in infos if name.endswith("/data.pkl") or name == "data.pkl"]
            if len(pickles) != 1:
                raise FormatError(f"{path}: expected one data.pkl in the zip archive, found {len(pickles)}")
            prefix = pickles[0][: -len("data.pkl")]
            data = archive.read(pickles[0])
    except zipfile.BadZipFile as error:
        raise FormatError(f"{path}: not a readable zip archive ({error})") from None
    try:
        sizes = _storages(_persistent_ids(io.BytesIO(data)), path)
    except (ValueError, EOFError, struct.error, KeyError, TypeError, IndexError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
        raise FormatError(f"{path}: corrupt data.pkl in the zip archive ({reason})") from None
    _check_sizes(sizes, size, max_tensor_bytes, path)
    for key, nbytes in sizes.items():
        record = infos.get(f"{prefix}data/{key}")
        if record is None or record.file_size < nbytes:
            found = "no record" if record is None else f"{record.file_size} bytes"
            raise FormatError(f"{path}: storage {key} declares {nbytes} bytes, its zip record holds {found}")
