"""A small, bounds-checked reader for the TFLite flatbuffer.

Used before a file reaches an interpreter (a garbage or truncated file gets a
clear error instead of undefined behaviour in C++ code), to read the edgelite
metadata, and to list operator versions. Pure Python, no dependency: it must
work on a Raspberry Pi with only tflite-runtime installed.

Layout facts from the TFLite schema (tensorflow/lite/schema/schema.fbs): the
root table `Model` has fields version(0), operator_codes(1), subgraphs(2),
description(3), buffers(4), metadata_buffer(5), metadata(6); `OperatorCode`
has deprecated_builtin_code(0, int8), custom_code(1), version(2, default 1),
builtin_code(3, int32); `Metadata` has name(0), buffer(1); `Buffer` has
data(0), offset(1, uint64), size(2, uint64).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from edgelite.errors import ModelFileError

FILE_IDENTIFIER = b"TFL3"
# deprecated_builtin_code is an int8; codes past it are stored in builtin_code.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127


@dataclass(frozen=True)
class OperatorCode:
    """One operator kind used by a model."""

    builtin_code: int
    version: int
    custom_code: str

    @property
    def name(self) -> str:
        return self.custom_code or builtin_name(self.builtin_code)


@dataclass(frozen=True)
class TFLiteFile:
    """What edgelite needs to know of a .tflite file without running it."""

    schema_version: int
    operator_codes: tuple[OperatorCode, ...]
    subgraph_count: int
    metadata: dict[str, bytes]
    description: str


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name

    def fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: not a valid .tflite file ({what})")

    def unpack(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise self.fail("truncated or corrupt: offset past the end of the file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int) -> "_Table":
        vtable = pos - self.unpack("<i", pos)
        vtable_size = self.unpack("<H", vtable)
        if vtable_size < 4 or vtable_size % 2:
            raise self.fail("corrupt table")
        return _Table(self, pos, vtable, vtable_size)

    def indirect(self, pos: int) -> int:
        return pos + self.unpack("<I", pos)

    def vector(self, pos: int, item_size: int) -> tuple[int, int]:
        length = self.unpack("<I", pos)
        start = pos + 4
        if start + length * item_size > len(self.data):
            raise self.fail("truncated or corrupt: a vector runs past the end of the file")
        return start, length

    def string(self, pos: int) -> str:
        start, length = self.vector(pos, 1)
        return self.data[start:start + length].decode("utf-8", errors="replace")


class _Table:
    def __init__(self, reader: _Reader, pos: int, vtable: int, vtable_size: int):
        self.r, self.pos, self.vtable, self.vtable_size = reader, pos, vtable, vtable_size

    def _field(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot >= self.vtable_size:
            return 0
        offset = self.r.unpack("<H", self.vtable + slot)
        return self.pos + offset if offset else 0

    def scalar(self, index: int, fmt: str, default: int) -> int:
        pos = self._field(index)
        return self.r.unpack(fmt, pos) if pos else default

    def string(self, index: int) -> str:
        pos = self._field(index)
        return self.r.string(self.r.indirect(pos)) if pos else ""

    def tables(self, index: int) -> list["_Table"]:
        pos = self._field(index)
        if not pos:
            return []
        start, length = self.r.vector(self.r.indirect(pos), 4)
        return [self.r.table(self.r.indirect(start + 4 * i)) for i in range(length)]

    def byte_span(self, index: int) -> tuple[int, int]:
        pos = self._field(index)
        if not pos:
            return 0, 0
        return self.r.vector(self.r.indirect(pos), 1)


def read_tflite(data: bytes, name: str = "model") -> TFLiteFile:
    """Check the structure of a .tflite file and read its operator codes and metadata.

    Raises:
        ModelFileError: the bytes are not a complete TFLite flatbuffer.
    """
    reader = _Reader(data, name)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise reader.fail("the 'TFL3' file identifier is missing")
    model = reader.table(reader.unpack("<I", 0))
    subgraphs = model.tables(2)
    if not subgraphs:
        raise reader.fail("it has no subgraph")
    buffers = model.tables(4)
    spans = []
    for buffer in buffers:
        start, length = buffer.byte_span(0)
        offset = buffer.scalar(1, "<Q", 0)
        size = buffer.scalar(2, "<Q", 0)
        if offset and offset + size > len(data):
            raise reader.fail("truncated: an external buffer runs past the end of the file")
        spans.append((start, length) if length else (offset, size))
    codes = []
    for table in model.tables(1):
        deprecated = table.scalar(0, "<b", 0)
        builtin = table.scalar(3, "<i", 0)
        codes.append(OperatorCode(
            builtin_code=max(deprecated, builtin) if deprecated != _PLACEHOLDER_FOR_GREATER_OP_CODES else builtin,
            version=table.scalar(2, "<i", 1),
            custom_code=table.string(1),
        ))
    metadata = {}
    for entry in model.tables(6):
        index = entry.scalar(1, "<I", 0)
        if index >= len(spans):
            raise reader.fail("a metadata entry points to a missing buffer")
        start, length = spans[index]
        metadata[entry.string(0)] = bytes(data[start:start + length])
    return TFLiteFile(
        schema_version=model.scalar(0, "<I", 0),
        operator_codes=tuple(codes),
        subgraph_count=len(subgraphs),
        metadata=metadata,
        description=model.string(3),
    )


def read_tflite_file(path: Path) -> TFLiteFile:
    """`read_tflite` on a file's bytes."""
    return read_tflite(Path(path).read_bytes(), Path(path).name)


def builtin_name(code: int) -> str:
    """The BuiltinOperator name of a code."""
    from edgelite.runtime.op_versions import BUILTIN_NAMES

    return BUILTIN_NAMES.get(code, f"BUILTIN_{code}")
