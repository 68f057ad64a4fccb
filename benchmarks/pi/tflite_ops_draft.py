#!/usr/bin/env python3
"""Read operator codes from a .tflite file and estimate the minimum TFLite runtime.

DRAFT for edgelite (to be moved into the package). Pure Python: plain `struct`
parsing of the TFLite FlatBuffer, no `flatbuffers`/`tensorflow` import needed.

Public API
    read_operator_codes(path_or_bytes) -> list[OpCode]
        one entry per model.operator_codes[i]: builtin code (resolved the way
        TFLite does it: max(builtin_code, deprecated_builtin_code)), the raw
        deprecated_builtin_code, the version, the custom code, and the op name.
    describe_operators(path_or_bytes) -> list[dict]
        one entry per operator instance (subgraph, index, op name, version,
        input/output tensor types, number of quantization scales per input).
    read_metadata(path_or_bytes) -> dict[str, bytes]
        model.metadata entries (e.g. "min_runtime_version" written by converter).
    min_runtime_for_op(op_name, version) -> str | None
    min_runtime_for_model(path_or_bytes) -> (version_str, [(op, ver, runtime)])
    can_load(path_or_bytes, runtime_version) -> (bool, [blocking (op, ver, needs)])

The (op, version) -> minimum runtime table carries the facts of TensorFlow's
tensorflow/compiler/mlir/lite/tools/versioning/runtime_version.cc (the copy
used by the TF 2.21 converter, entries up to "2.23.0"). That table is what the
converter uses to fill the "min_runtime_version" metadata; it is an estimate:
an (op, version) missing from the table is reported with runtime None.

Why this matters: tflite-runtime 2.14 (last tflite_runtime release) refuses
e.g. FULLY_CONNECTED v12 (hybrid float-in/int8-weight FC with per-channel
weights, produced by TF>=2.17 dynamic-range quantization) with
  "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'".
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

BytesLike = Union[bytes, bytearray, memoryview]
Source = Union[str, Path, BytesLike]

# BuiltinOperator enum of the TFLite schema (schema.fbs), code -> name.
BUILTIN_OPS: dict[int, str] = {
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
OP_CODES: dict[str, int] = {v: k for k, v in BUILTIN_OPS.items()}

# TensorType enum of the TFLite schema.
TENSOR_TYPES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64",
                5: "STRING", 6: "BOOL", 7: "INT16", 8: "COMPLEX64", 9: "INT8",
                10: "FLOAT64", 11: "COMPLEX128", 12: "UINT64", 13: "RESOURCE",
                14: "VARIANT", 15: "UINT32", 16: "UINT16", 17: "INT4",
                18: "BFLOAT16", 19: "INT2", 20: "UINT4"}

# op name -> space separated minimum runtime per version, starting at version 1;
# "-" marks a version without an entry. Facts from runtime_version.cc (TF
# master at the 2.21/2.22 era). TILE v4 -> 2.12.0 comes from the older
# tensorflow/lite/tools/versioning copy of the same table.
_RUNTIME_TABLE_SRC = """
ABS 1.13.0 2.4.0 2.5.0 2.6.0 2.12.0
ADD 1.5.0 1.14.0 2.4.0 2.6.0 2.13.0 2.23.0
ADD_N 1.14.0
ARG_MAX 1.9.0 1.14.0 2.9.0
ARG_MIN 1.9.0 1.14.0 2.9.0
ASSIGN_VARIABLE 2.6.0
ATAN2 2.10.0
AVERAGE_POOL_2D 1.5.0 1.14.0 2.3.0
BATCH_MATMUL 2.3.0 2.3.0 2.4.0 2.5.0
BATCH_TO_SPACE_ND 1.6.0 1.14.0 2.3.0 2.12.0
BIDIRECTIONAL_SEQUENCE_LSTM 1.14.0 1.14.0 1.14.0
BIDIRECTIONAL_SEQUENCE_RNN 1.14.0 1.14.0 2.3.0
BITCAST 2.13.0
BITWISE_XOR 2.13.0
BROADCAST_ARGS 2.6.0
BROADCAST_TO - 2.5.0 2.5.0
BUCKETIZE 2.8.0
CALL_ONCE 2.5.0
CAST 1.5.0 2.7.0 2.8.0 2.9.0 2.12.0 2.15.0 2.17.0 2.21.0
CEIL 1.14.0
COMPLEX_ABS 2.5.0
CONCATENATION 1.5.0 1.14.0 2.3.0 2.14.0 2.21.0
CONV_2D 1.5.0 1.14.0 1.14.0 2.3.0 2.4.0 2.9.0 2.11.0 2.15.0
CONV_3D 2.5.0
CONV_3D_TRANSPOSE 2.6.0
COS 1.14.0
CUMSUM 2.4.0
DENSIFY 2.2.0
DEPTH_TO_SPACE 2.1.0 2.5.0
DEPTHWISE_CONV_2D 1.5.0 1.12.0 1.14.0 2.2.0 2.3.0 2.3.0 2.11.0
DEQUANTIZE 1.13.1 1.14.0 1.15.0 2.2.0 2.7.0 2.18.0 2.21.0 2.22.0
DILATE 2.15.0
DIV 1.6.0 2.3.0
DYNAMIC_UPDATE_SLICE 2.9.0 2.17.0 2.19.0 2.20.0 2.21.0 2.22.0
ELU 1.14.0
EMBEDDING_LOOKUP 1.13.0 1.14.0 1.14.0 2.18.0 2.21.0
EMBEDDING_LOOKUP_SPARSE 1.5.0
EQUAL 1.14.0 1.14.0 2.3.0 2.13.0 2.21.0
EXP 1.7.0 2.12.0
EXPAND_DIMS 1.10.0
FAKE_QUANT 1.5.0 1.10.0
FILL 1.13.0 2.3.0 2.5.0 2.12.0
FLOOR 1.9.0
FLOOR_DIV 1.14.0 1.14.0 2.13.0
FLOOR_MOD 1.13.0 2.13.0
FULLY_CONNECTED 1.5.0 1.10.0 1.14.0 1.14.0 2.0.0 2.1.0 2.3.0 2.3.0 2.3.0 2.11.0 2.15.0 2.17.0 2.18.0 2.21.0
GATHER 1.6.0 1.14.0 1.15.0 2.4.0 2.5.0 2.13.0 2.15.0
GATHER_ND 1.14.0 2.3.0 2.5.0 2.13.0 2.16.0
GELU 2.9.0 2.9.0
GREATER 1.14.0 1.14.0
GREATER_EQUAL 1.14.0 1.14.0 2.13.0
HARD_SWISH 1.15.0
HASHTABLE 2.5.0
HASHTABLE_FIND 2.5.0
HASHTABLE_IMPORT 2.5.0
HASHTABLE_LOOKUP 1.5.0
HASHTABLE_SIZE 2.5.0
IF 1.15.0
IMAG 2.5.0
L2_NORMALIZATION 1.5.0 1.14.0
L2_POOL_2D 1.5.0
LEAKY_RELU 1.13.1 2.3.0
LESS 1.14.0 1.14.0 2.13.0
LESS_EQUAL 1.14.0 1.14.0
LOCAL_RESPONSE_NORMALIZATION 1.5.0
LOG 1.14.0 2.15.0
LOG_SOFTMAX 1.14.0 1.14.0
LOGICAL_AND 1.11.0
LOGICAL_NOT 1.11.0
LOGICAL_OR 1.11.0
LOGISTIC 1.14.0 1.14.0 2.3.0
LSH_PROJECTION 1.5.0
LSTM 1.7.0 1.10.0 1.14.0 2.3.0
MATRIX_DIAG 1.14.0
MATRIX_SET_DIAG 1.14.0
MAX_POOL_2D 1.5.0 1.14.0 2.3.0
MAXIMUM 1.14.0 1.14.0 2.3.0 2.3.0
MEAN 1.6.0 1.14.0 2.4.0
MINIMUM 1.14.0 1.14.0 2.3.0 2.3.0
MIRROR_PAD 1.13.1 2.3.0 2.12.0
MUL 1.5.0 1.14.0 1.15.0 2.3.0 2.6.0 2.11.0 2.13.0 2.23.0
MULTINOMIAL 2.8.0
NEG 1.9.0
NON_MAX_SUPPRESSION_V4 2.1.0
NON_MAX_SUPPRESSION_V5 2.1.0
NOT_EQUAL 1.14.0 1.14.0 2.3.0 2.21.0
ONE_HOT 1.11.0
PACK 1.11.0 1.14.0 2.3.0 2.13.0
PAD 1.5.0 1.14.0 2.4.0 2.6.0 2.20.0
PADV2 1.9.0 1.14.0 2.4.0 2.6.0 2.20.0
POW 1.10.0
PRELU 1.8.0
QUANTIZE 1.14.0 1.15.0 2.7.0 2.21.0 2.21.0 2.21.0
RANDOM_STANDARD_NORMAL 2.8.0
RANDOM_UNIFORM 2.8.0
RANGE 1.13.0 2.14.0
RANK 1.14.0
READ_VARIABLE 2.6.0
REAL 2.5.0
REDUCE_ALL 2.6.0
REDUCE_ANY 1.11.0
REDUCE_MAX 1.11.0 1.14.0 2.5.0
REDUCE_MIN 1.11.0 1.14.0 2.5.0
REDUCE_PROD 1.11.0 2.6.0
REDUCE_WINDOW 2.15.0
RELU 1.5.0 2.1.0 2.5.0
RELU6 1.5.0 1.14.0 2.5.0
RELU_0_TO_1 2.10.0
RELU_N1_TO_1 1.5.0
RESHAPE 1.5.0
RESIZE_BILINEAR 1.7.0 1.14.0 2.2.0 2.5.0
RESIZE_NEAREST_NEIGHBOR 1.13.1 1.14.0 2.3.0 2.4.0
REVERSE_SEQUENCE 1.14.0
REVERSE_V2 1.14.0 2.2.0 2.5.0
RFFT2D 2.5.0
RIGHT_SHIFT 2.13.0
RNN 1.5.0 1.14.0 2.3.0
ROUND 1.14.0
RSQRT 1.10.0 2.5.0 2.15.0
SCATTER_ND 2.1.0
SEGMENT_SUM 2.2.0
SELECT 1.14.0 1.14.0 2.12.0 2.12.0
SELECT_V2 2.2.0 2.12.0
SHAPE 1.10.0
SIGN 2.11.0 2.12.0
SIN 1.9.0
SKIP_GRAM 1.5.0
SLICE 1.14.0 1.14.0 1.14.0 2.4.0 2.5.0 2.14.0 2.21.0
SOFTMAX 1.5.0 1.14.0 2.3.0
SPACE_TO_BATCH_ND 1.6.0 1.14.0 2.3.0 2.12.0
SPACE_TO_DEPTH 1.5.0 1.14.0
SPARSE_TO_DENSE 1.9.0 1.14.0 1.15.0
SPLIT 1.5.0 1.14.0 1.14.0 2.3.0
SPLIT_V 1.13.1 2.3.0
SQRT 1.10.0 2.21.0
SQUARE 1.12.0
SQUARED_DIFFERENCE 1.13.1 2.5.0
SQUEEZE 1.6.0 2.5.0
STABLEHLO_ADD 2.16.0
STABLEHLO_AND 2.17.0
STABLEHLO_CASE 2.17.0
STABLEHLO_CBRT 2.17.0
STABLEHLO_COMPOSITE 2.17.0
STABLEHLO_GATHER 2.16.0
STABLEHLO_MAXIMUM 2.16.0
STABLEHLO_MINIMUM 2.16.0
STABLEHLO_MULTIPLY 2.16.0
STABLEHLO_PAD 2.16.0
STABLEHLO_REDUCE_WINDOW 2.16.0
STABLEHLO_RNG_BIT_GENERATOR 2.15.0
STABLEHLO_SCATTER 2.15.0
STABLEHLO_SHIFT_LEFT 2.17.0
STRIDED_SLICE 1.6.0 1.14.0 2.1.0 2.2.0 2.5.0 2.6.0 2.14.0 2.14.0
SUB 1.6.0 1.14.0 2.3.0 2.4.0 2.4.0
SUM 1.10.0 1.15.0
SVDF 1.5.0 1.14.0 2.2.0 2.3.0
TANH 1.14.0 1.14.0 2.3.0
TILE 1.10.1 2.2.0 2.8.0 2.12.0
TOPK_V2 1.7.0 1.14.0 2.13.0
TRANSPOSE 1.6.0 1.14.0 1.15.0 2.3.0 2.4.0 2.12.0 2.14.4 2.22.0
TRANSPOSE_CONV 1.9.0 2.2.0 2.3.0 2.13.0 2.15.0
UNIDIRECTIONAL_SEQUENCE_LSTM 1.13.1 1.14.0 2.3.0 2.12.0
UNIDIRECTIONAL_SEQUENCE_RNN 1.14.0 1.14.0 2.3.0
UNIQUE 1.14.0
UNPACK 1.11.0 1.14.0 2.2.0 2.3.0 2.22.0
UNSORTED_SEGMENT_MAX 2.10.0
UNSORTED_SEGMENT_MIN 2.11.0
UNSORTED_SEGMENT_PROD 2.10.0
UNSORTED_SEGMENT_SUM 2.10.0
VAR_HANDLE 2.6.0
WHERE 1.14.0 2.8.0
WHILE 1.15.0
ZEROS_LIKE 1.12.0
"""


def _parse_runtime_table(src: str) -> dict[tuple[str, int], str]:
    table: dict[tuple[str, int], str] = {}
    for line in src.strip().splitlines():
        name, *versions = line.split()
        for i, rt in enumerate(versions, start=1):
            if rt != "-":
                table[(name, i)] = rt
    return table


RUNTIME_TABLE: dict[tuple[str, int], str] = _parse_runtime_table(_RUNTIME_TABLE_SRC)


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


# --------------------------------------------------------------------------
# Minimal FlatBuffer reader (little endian, tables/vectors/strings/scalars)
# --------------------------------------------------------------------------
class _FB:
    def __init__(self, buf: BytesLike):
        self.b = memoryview(buf).cast("B") if not isinstance(buf, bytes) else buf
        if len(self.b) < 8:
            raise ValueError("not a TFLite flatbuffer (too short)")

    def u8(self, o): return self.b[o]
    def i8(self, o): return struct.unpack_from("<b", self.b, o)[0]
    def u16(self, o): return struct.unpack_from("<H", self.b, o)[0]
    def i32(self, o): return struct.unpack_from("<i", self.b, o)[0]
    def u32(self, o): return struct.unpack_from("<I", self.b, o)[0]

    def root(self) -> int:
        return self.u32(0)

    def field(self, table: int, idx: int) -> int:
        """Absolute offset of field `idx` of `table`, or 0 when absent."""
        vt = table - self.i32(table)
        vt_len = self.u16(vt)
        slot = 4 + 2 * idx
        if slot >= vt_len:
            return 0
        rel = self.u16(vt + slot)
        return table + rel if rel else 0

    def deref(self, at: int) -> int:
        return at + self.u32(at)

    def scalar(self, table, idx, fmt, default):
        o = self.field(table, idx)
        return struct.unpack_from("<" + fmt, self.b, o)[0] if o else default

    def table(self, table, idx):
        o = self.field(table, idx)
        return self.deref(o) if o else None

    def vector(self, table, idx):
        """(start, length) of a vector field, or (0, 0)."""
        o = self.field(table, idx)
        if not o:
            return 0, 0
        v = self.deref(o)
        return v + 4, self.u32(v)

    def tables(self, table, idx) -> list[int]:
        start, n = self.vector(table, idx)
        return [self.deref(start + 4 * i) for i in range(n)]

    def string(self, table, idx):
        o = self.field(table, idx)
        if not o:
            return None
        s = self.deref(o)
        n = self.u32(s)
        return bytes(self.b[s + 4:s + 4 + n]).decode("utf-8", "replace")

    def scalars(self, table, idx, fmt, size):
        start, n = self.vector(table, idx)
        return [struct.unpack_from("<" + fmt, self.b, start + size * i)[0]
                for i in range(n)]


def _load(src: Source) -> _FB:
    if isinstance(src, (str, Path)):
        data = Path(src).read_bytes()
    else:
        data = bytes(src)
    if data[4:8] != b"TFL3":
        # identifier is optional in the schema but always written by converters
        raise ValueError("not a TFLite model: file identifier is %r, expected b'TFL3'"
                         % bytes(data[4:8]))
    return _FB(data)


# Schema field indices (schema.fbs)
_M_OPCODES, _M_SUBGRAPHS, _M_BUFFERS, _M_METADATA = 1, 2, 4, 6
_OC_DEPRECATED, _OC_CUSTOM, _OC_VERSION, _OC_BUILTIN = 0, 1, 2, 3
_SG_TENSORS, _SG_OPERATORS, _SG_NAME = 0, 3, 4
_OP_OPCODE_INDEX, _OP_INPUTS, _OP_OUTPUTS = 0, 1, 2
_T_SHAPE, _T_TYPE, _T_NAME, _T_QUANT = 0, 1, 3, 4
_Q_SCALE = 2
_MD_NAME, _MD_BUFFER = 0, 1
_BUF_DATA, _BUF_OFFSET, _BUF_SIZE = 0, 1, 2


@dataclass(frozen=True)
class OpCode:
    index: int                 # position in model.operator_codes
    builtin_code: int          # resolved: max(builtin_code, deprecated_builtin_code)
    deprecated_builtin_code: int
    raw_builtin_code: int      # the (new) builtin_code field as stored
    version: int
    custom_code: str | None
    name: str                  # BuiltinOperator name, or "CUSTOM:<custom_code>"

    @property
    def min_runtime(self) -> str | None:
        return min_runtime_for_op(self.name, self.version)


def read_operator_codes(src: Source) -> list[OpCode]:
    fb = _load(src)
    model = fb.root()
    out = []
    for i, oc in enumerate(fb.tables(model, _M_OPCODES)):
        dep = fb.scalar(oc, _OC_DEPRECATED, "b", 0)
        raw = fb.scalar(oc, _OC_BUILTIN, "i", 0)
        ver = fb.scalar(oc, _OC_VERSION, "i", 1)
        custom = fb.string(oc, _OC_CUSTOM)
        code = max(raw, dep)  # same rule as tflite::GetBuiltinCode
        if code == OP_CODES["CUSTOM"]:
            name = f"CUSTOM:{custom}"
        else:
            name = BUILTIN_OPS.get(code, f"UNKNOWN_{code}")
        out.append(OpCode(i, code, dep, raw, ver, custom, name))
    return out


def describe_operators(src: Source) -> list[dict]:
    """Per operator instance: op, version, input/output types, #scales per input."""
    fb = _load(src)
    model = fb.root()
    codes = read_operator_codes(fb.b)
    rows = []
    for si, sg in enumerate(fb.tables(model, _M_SUBGRAPHS)):
        tensors = fb.tables(sg, _SG_TENSORS)

        def tinfo(ti):
            if ti < 0:
                return None
            t = tensors[ti]
            q = fb.table(t, _T_QUANT)
            nscale = len(fb.scalars(q, _Q_SCALE, "f", 4)) if q is not None else 0
            return {"type": TENSOR_TYPES.get(fb.scalar(t, _T_TYPE, "b", 0), "?"),
                    "shape": fb.scalars(t, _T_SHAPE, "i", 4),
                    "n_scales": nscale}

        for oi, op in enumerate(fb.tables(sg, _SG_OPERATORS)):
            oc = codes[fb.scalar(op, _OP_OPCODE_INDEX, "I", 0)]
            rows.append({
                "subgraph": si, "index": oi, "op": oc.name, "version": oc.version,
                "inputs": [tinfo(t) for t in fb.scalars(op, _OP_INPUTS, "i", 4)],
                "outputs": [tinfo(t) for t in fb.scalars(op, _OP_OUTPUTS, "i", 4)],
            })
    return rows


def read_metadata(src: Source) -> dict[str, bytes]:
    fb = _load(src)
    model = fb.root()
    buffers = fb.tables(model, _M_BUFFERS)
    out = {}
    for md in fb.tables(model, _M_METADATA):
        name = fb.string(md, _MD_NAME)
        bi = fb.scalar(md, _MD_BUFFER, "I", 0)
        data = b""
        if bi < len(buffers):
            start, n = fb.vector(buffers[bi], _BUF_DATA)
            if n:
                data = bytes(fb.b[start:start + n])
            else:  # large models store buffers after the flatbuffer
                off = fb.scalar(buffers[bi], _BUF_OFFSET, "Q", 0)
                size = fb.scalar(buffers[bi], _BUF_SIZE, "Q", 0)
                if off > 1:
                    data = bytes(fb.b[off:off + size])
        out[name] = data
    return out


def min_runtime_for_op(op_name: str, version: int) -> str | None:
    return RUNTIME_TABLE.get((op_name, version))


def min_runtime_for_model(src: Source):
    """Highest per-op minimum runtime, plus the per-op list (op, version, runtime)."""
    per_op = [(c.name, c.version, c.min_runtime) for c in read_operator_codes(src)]
    known = [rt for _, _, rt in per_op if rt]
    return (max(known, key=_vkey) if known else None), per_op


def can_load(src: Source, runtime_version: str):
    """Does the table say `runtime_version` (e.g. "2.14.0") has every op version?

    Returns (ok, blocking) where blocking lists (op, version, needs) whose table
    entry is newer than runtime_version, or (op, version, None) when the pair is
    unknown to the table (treated as blocking: a newer op version than we know).
    """
    rv = _vkey(runtime_version)
    blocking = []
    for c in read_operator_codes(src):
        if c.name.startswith("CUSTOM:"):
            continue
        need = c.min_runtime
        if need is None or _vkey(need) > rv:
            blocking.append((c.name, c.version, need))
    return (not blocking), blocking


def _format_report(path: str) -> str:
    lines = [f"{path}"]
    md = read_metadata(path)
    if "min_runtime_version" in md:
        lines.append("  metadata min_runtime_version: "
                     + md["min_runtime_version"].rstrip(b"\0").decode())
    for c in read_operator_codes(path):
        lines.append(f"  {c.name:<22} v{c.version:<3} (builtin_code={c.raw_builtin_code}, "
                     f"deprecated_builtin_code={c.deprecated_builtin_code}) "
                     f"min runtime {c.min_runtime}")
    need, _ = min_runtime_for_model(path)
    ok, blocking = can_load(path, "2.14.0")
    lines.append(f"  => model needs >= {need}; tflite-runtime 2.14 per table: "
                 + ("OK" if ok else f"NO {blocking}"))
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    paths = sys.argv[1:]
    if not paths:
        print("usage: tflite_ops_draft.py MODEL.tflite [...]", file=sys.stderr)
        sys.exit(2)
    for p in paths:
        print(_format_report(p))
