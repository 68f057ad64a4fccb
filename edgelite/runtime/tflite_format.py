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

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from edgelite.errors import ModelFileError

FILE_IDENTIFIER = b"TFL3"
# Flatbuffer offsets are 32-bit and signed in places: no valid .tflite is larger.
MAX_FLATBUFFER_BYTES = (1 << 31) - 1
# deprecated_builtin_code is an int8; codes past it are stored in builtin_code.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127

# The schema's BuiltinOperator enum: code -> name.
BUILTIN_NAMES: dict[int, str] = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D", 5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 7: "EMBEDDING_LOOKUP",
    8: "FLOOR", 9: "FULLY_CONNECTED", 10: "HASHTABLE_LOOKUP", 11: "L2_NORMALIZATION",
    12: "L2_POOL_2D", 13: "LOCAL_RESPONSE_NORMALIZATION", 14: "LOGISTIC",
    15: "LSH_PROJECTION", 16: "LSTM", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU",
    20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 24: "RNN",
    25: "SOFTMAX", 26: "SPACE_TO_DEPTH", 27: "SVDF", 28: "TANH", 29: "CONCAT_EMBEDDINGS",
    30: "SKIP_GRAM", 31: "CALL", 32: "CUSTOM", 33: "EMBEDDING_LOOKUP_SPARSE", 34: "PAD",
    35: "UNIDIRECTIONAL_SEQUENCE_RNN", 36: "GATHER", 37: "BATCH_TO_SPACE_ND",
    38: "SPACE_TO_BATCH_ND", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 42: "DIV",
    43: "SQUEEZE", 44: "UNIDIRECTIONAL_SEQUENCE_LSTM", 45: "STRIDED_SLICE",
    46: "BIDIRECTIONAL_SEQUENCE_RNN", 47: "EXP", 48: "TOPK_V2", 49: "SPLIT",
    50: "LOG_SOFTMAX", 51: "DELEGATE", 52: "BIDIRECTIONAL_SEQUENCE_LSTM", 53: "CAST",
    54: "PRELU", 55: "MAXIMUM", 56: "ARG_MAX", 57: "MINIMUM", 58: "LESS", 59: "NEG",
    60: "PADV2", 61: "GREATER", 62: "GREATER_EQUAL", 63: "LESS_EQUAL", 64: "SELECT",
    65: "SLICE", 66: "SIN", 67: "TRANSPOSE_CONV", 68: "SPARSE_TO_DENSE", 69: "TILE",
    70: "EXPAND_DIMS", 71: "EQUAL", 72: "NOT_EQUAL", 73: "LOG", 74: "SUM", 75: "SQRT",
    76: "RSQRT", 77: "SHAPE", 78: "POW", 79: "ARG_MIN", 80: "FAKE_QUANT",
    81: "REDUCE_PROD", 82: "REDUCE_MAX", 83: "PACK", 84: "LOGICAL_OR", 85: "ONE_HOT",
    86: "LOGICAL_AND", 87: "LOGICAL_NOT", 88: "UNPACK", 89: "REDUCE_MIN", 90: "FLOOR_DIV",
    91: "REDUCE_ANY", 92: "SQUARE", 93: "ZEROS_LIKE", 94: "FILL", 95: "FLOOR_MOD",
    96: "RANGE", 97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU", 99: "SQUARED_DIFFERENCE",
    100: "MIRROR_PAD", 101: "ABS", 102: "SPLIT_V", 103: "UNIQUE", 104: "CEIL",
    105: "REVERSE_V2", 106: "ADD_N", 107: "GATHER_ND", 108: "COS", 109: "WHERE",
    110: "RANK", 111: "ELU", 112: "REVERSE_SEQUENCE", 113: "MATRIX_DIAG", 114: "QUANTIZE",
    115: "MATRIX_SET_DIAG", 116: "ROUND", 117: "HARD_SWISH", 118: "IF", 119: "WHILE",
    120: "NON_MAX_SUPPRESSION_V4", 121: "NON_MAX_SUPPRESSION_V5", 122: "SCATTER_ND",
    123: "SELECT_V2", 124: "DENSIFY", 125: "SEGMENT_SUM", 126: "BATCH_MATMUL",
    127: "PLACEHOLDER_FOR_GREATER_OP_CODES", 128: "CUMSUM", 129: "CALL_ONCE",
    130: "BROADCAST_TO", 131: "RFFT2D", 132: "CONV_3D", 133: "IMAG", 134: "REAL",
    135: "COMPLEX_ABS", 136: "HASHTABLE", 137: "HASHTABLE_FIND", 138: "HASHTABLE_IMPORT",
    139: "HASHTABLE_SIZE", 140: "REDUCE_ALL", 141: "CONV_3D_TRANSPOSE", 142: "VAR_HANDLE",
    143: "READ_VARIABLE", 144: "ASSIGN_VARIABLE", 145: "BROADCAST_ARGS",
    146: "RANDOM_STANDARD_NORMAL", 147: "BUCKETIZE", 148: "RANDOM_UNIFORM",
    149: "MULTINOMIAL", 150: "GELU", 151: "DYNAMIC_UPDATE_SLICE", 152: "RELU_0_TO_1",
    153: "UNSORTED_SEGMENT_PROD", 154: "UNSORTED_SEGMENT_MAX", 155: "UNSORTED_SEGMENT_SUM",
    156: "ATAN2", 157: "UNSORTED_SEGMENT_MIN", 158: "SIGN", 159: "BITCAST",
    160: "BITWISE_XOR", 161: "RIGHT_SHIFT", 162: "STABLEHLO_LOGISTIC",
    163: "STABLEHLO_ADD", 164: "STABLEHLO_DIVIDE", 165: "STABLEHLO_MULTIPLY",
    166: "STABLEHLO_MAXIMUM", 167: "STABLEHLO_RESHAPE", 168: "STABLEHLO_CLAMP",
    169: "STABLEHLO_CONCATENATE", 170: "STABLEHLO_BROADCAST_IN_DIM",
    171: "STABLEHLO_CONVOLUTION", 172: "STABLEHLO_SLICE", 173: "STABLEHLO_CUSTOM_CALL",
    174: "STABLEHLO_REDUCE", 175: "STABLEHLO_ABS", 176: "STABLEHLO_AND",
    177: "STABLEHLO_COSINE", 178: "STABLEHLO_EXPONENTIAL", 179: "STABLEHLO_FLOOR",
    180: "STABLEHLO_LOG", 181: "STABLEHLO_MINIMUM", 182: "STABLEHLO_NEGATE",
    183: "STABLEHLO_OR", 184: "STABLEHLO_POWER", 185: "STABLEHLO_REMAINDER",
    186: "STABLEHLO_RSQRT", 187: "STABLEHLO_SELECT", 188: "STABLEHLO_SUBTRACT",
    189: "STABLEHLO_TANH", 190: "STABLEHLO_SCATTER", 191: "STABLEHLO_COMPARE",
    192: "STABLEHLO_CONVERT", 193: "STABLEHLO_DYNAMIC_SLICE",
    194: "STABLEHLO_DYNAMIC_UPDATE_SLICE", 195: "STABLEHLO_PAD", 196: "STABLEHLO_IOTA",
    197: "STABLEHLO_DOT_GENERAL", 198: "STABLEHLO_REDUCE_WINDOW", 199: "STABLEHLO_SORT",
    200: "STABLEHLO_WHILE", 201: "STABLEHLO_GATHER", 202: "STABLEHLO_TRANSPOSE",
    203: "DILATE", 204: "STABLEHLO_RNG_BIT_GENERATOR", 205: "REDUCE_WINDOW",
    206: "STABLEHLO_COMPOSITE", 207: "STABLEHLO_SHIFT_LEFT", 208: "STABLEHLO_CBRT",
    209: "STABLEHLO_CASE",
}


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
    """`read_tflite` on a file's bytes (its header checked before the rest is read)."""
    return read_tflite(read_tflite_bytes(Path(path)), Path(path).name)


def read_tflite_bytes(path: Path) -> bytes:
    """A .tflite file's bytes, read only after its size and 8-byte header say it is a TFLite flatbuffer.

    A garbage file of gigabytes is refused after reading 8 bytes, not all of it.

    Raises:
        ModelFileError: too large for a flatbuffer, or without the 'TFL3' identifier.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        reader = _Reader(head, path.name)
        if len(head) < 8 or head[4:8] != FILE_IDENTIFIER:
            raise reader.fail("the 'TFL3' file identifier is missing")
        if size > MAX_FLATBUFFER_BYTES:
            raise reader.fail(f"{size:,} bytes; a TFLite flatbuffer is at most 2 GiB")
        return head + handle.read()


def builtin_name(code: int) -> str:
    """The BuiltinOperator name of a code."""
    return BUILTIN_NAMES.get(code, f"BUILTIN_{code}")
