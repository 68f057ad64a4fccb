"""Interpreters behind `edgelite.runtime.load`: LiteRT (or tflite-runtime) and onnxruntime.

A backend takes a batch already in the model's input dtype and returns the raw
output. Quantization, preprocessing and labels are the `Model`'s business.
"""

from __future__ import annotations

import importlib
import re
import threading
from importlib.metadata import version
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edgelite.errors import DependencyError, ModelFileError
from edgelite.modes import TFLiteInterpreter
from edgelite.runtime.op_versions import too_new_for
from edgelite.runtime.tflite_format import OperatorCode
from edgelite.silence import silenced_fds


@dataclass(frozen=True)
class TensorSpec:
    """Shape (-1 where dynamic), dtype and quantization of one model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)


# The light TFLite interpreters, in the order "auto" tries them: (module, pip package).
_LIGHT_INTERPRETERS = {"litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
                       "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime")}


def _import_tflite_interpreter(choice: TFLiteInterpreter = "auto") -> tuple[type, str, str]:
    """The TFLite interpreter to use: by default ai-edge-litert, else tflite-runtime.

    TensorFlow's own `tf.lite.Interpreter` is used only when asked for by name
    ("tf.lite"): the light runtime never imports TensorFlow on its own.
    """
    if choice == "tf.lite":
        try:
            import tensorflow as tf
        except ImportError:
            raise DependencyError("TensorFlow is not installed, so tf.lite is not available; "
                                  "pip install ai-edge-litert") from None
        return tf.lite.Interpreter, "tf.lite", tf.__version__
    for kind, (module, package) in _LIGHT_INTERPRETERS.items():
        if choice not in ("auto", kind):
            continue
        try:
            return importlib.import_module(module).Interpreter, kind, version(package)
        except ImportError:
            continue
    wanted = "ai-edge-litert" if choice == "auto" else _LIGHT_INTERPRETERS[choice][1]
    raise DependencyError(f"{'no TFLite interpreter' if choice == 'auto' else wanted} is not installed; "
                          "install one with: pip install ai-edge-litert")


_UNKNOWN_OP = re.compile(r"Didn't find (?:op for builtin opcode|custom op for name) '([^']+)'(?: version '(\d+)')?")


def _explain_load_failure(name: str, kind: str, version: str, exc: Exception) -> ModelFileError:
    text = str(exc).strip().splitlines()
    first = next((line for line in text if "Didn't find" in line), text[0] if text else type(exc).__name__)
    match = _UNKNOWN_OP.search(str(exc))
    if match:
        op, op_version = match.group(1), match.group(2)
        what = f"{op} version {op_version}" if op_version else op
        return ModelFileError(
            f"{name}: {kind} {version} does not know the op {what}; this artifact needs a newer "
            "runtime: pip install ai-edge-litert (or convert with --compat tflite-runtime-2.14)"
        )
    return ModelFileError(f"{name}: {kind} {version} cannot load it ({first})")


def _check_op_versions(name: str, runtime: str, codes: Sequence[OperatorCode]) -> None:
    """Name the op an old tflite-runtime lacks, before its interpreter fails less clearly."""
    missing = [r for r in too_new_for(codes, runtime) if r.runtime]
    if missing:
        first = missing[0]
        raise ModelFileError(
            f"{name}: tflite-runtime {runtime} does not have the op {first.op} version {first.version} "
            f"(TFLite {first.runtime} or newer has it); install ai-edge-litert: pip install ai-edge-litert")


# Bounds on what a file may make the interpreter allocate: beyond them it is corrupt or hostile, not a model.
MAX_TENSOR_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30
# Quantization scales of 8- and 16-bit tensors: real models stay far inside; at the bounds, the ratio of
# two scales is still a finite float32 (1e9 * 1e9 / 1e-9 < 3.4e38).
MAX_SCALE = 1e9
MIN_ACTIVATION_SCALE = 1e-9
# Operators of image models with the number of inputs their kernels take (fewest, most; tensorflow/lite/kernels),
# each with one output except SPLIT. XNNPACK's delegate reads an operator's inputs before the kernel checks
# their number, so a file with a wrong count can crash it.
_ARITY = {
    "ADD": (2, 2), "SUB": (2, 2), "MUL": (2, 2), "DIV": (2, 2), "MAXIMUM": (2, 2), "MINIMUM": (2, 2),
    "AVERAGE_POOL_2D": (1, 1), "MAX_POOL_2D": (1, 1), "CONV_2D": (2, 3), "DEPTHWISE_CONV_2D": (2, 3),
    "FULLY_CONNECTED": (2, 3), "TRANSPOSE_CONV": (3, 4), "STRIDED_SLICE": (4, 4), "SLICE": (3, 3),
    "RESHAPE": (1, 2), "SOFTMAX": (1, 1), "LOGISTIC": (1, 1), "TANH": (1, 1), "RELU": (1, 1), "RELU6": (1, 1),
    "HARD_SWISH": (1, 1), "LEAKY_RELU": (1, 1), "PRELU": (2, 2), "MEAN": (2, 2), "SUM": (2, 2),
    "REDUCE_MAX": (2, 2), "PAD": (2, 2), "PADV2": (3, 3), "QUANTIZE": (1, 1), "DEQUANTIZE": (1, 1),
    "SHAPE": (1, 1), "TRANSPOSE": (2, 2), "RESIZE_BILINEAR": (2, 2), "RESIZE_NEAREST_NEIGHBOR": (2, 2),
    "SQUEEZE": (1, 1), "EXPAND_DIMS": (2, 2), "BATCH_MATMUL": (2, 2), "GATHER": (2, 2), "SPLIT": (2, 2),
    "CONCATENATION": (1, 1 << 16), "PACK": (1, 1 << 16),
}
# Input positions that may be absent (-1) in those ops: the bias.
_OPTIONAL_INPUTS = {"CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2}, "TRANSPOSE_CONV": {3}}


def _check_graph(interpreter, name: str) -> None:
    """Refuse, before tensors are allocated, a graph LiteRT would crash on or allocate gigabytes for.

    LiteRT trusts a file's tensor shapes, quantization and operator wiring: a
    fuzzed file that passes its checks can write into its own input or a
    constant, read a missing input, divide by a zero scale, or ask for a 10 GB
    tensor. These are checks of the graph as the interpreter itself parsed it.
    """
    corrupt = f"{name}: not a valid model graph (the file is corrupt"
    details = {int(d["index"]): d for d in interpreter.get_tensor_details()}
    total = 0
    for index, detail in details.items():
        _check_quantization(detail, corrupt, activation=False)
        size = _tensor_bytes(detail)
        total += size
        if size > MAX_TENSOR_BYTES or total > MAX_TOTAL_BYTES:
            shape = [int(d) for d in detail["shape"]]
            raise ModelFileError(f"{corrupt}: tensor {index} of shape {shape} would need "
                                 f"{size / 2**20:,.0f} MB; at most {MAX_TENSOR_BYTES >> 20:,} MB a tensor and "
                                 f"{MAX_TOTAL_BYTES >> 20:,} MB in all are allowed)")
    operators = getattr(interpreter, "_get_ops_details", None)
    if operators is None:  # an interpreter without the (experimental) graph view: its own checks only
        return
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    producer = _check_operators(interpreter, operators(), details, graph_inputs, corrupt)
    for index in graph_inputs | set(producer):
        if index in details:
            _check_quantization(details[index], corrupt, activation=True)


def _check_operators(interpreter, ops: list[dict], details: dict[int, dict], graph_inputs: set[int],
                     corrupt: str) -> dict[int, int]:
    """Each operator's wiring; returns which operator writes each tensor."""
    producer: dict[int, int] = {}
    for op in ops:
        number, kind = op["index"], op["op_name"]
        inputs, outputs = [int(i) for i in op["inputs"]], [int(i) for i in op["outputs"]]
        where = f"{corrupt}: operator {number}, {kind},"
        for tensor in outputs:
            if tensor < 0:
                raise ModelFileError(f"{where} writes a missing tensor)")
            if tensor in graph_inputs or tensor in producer or (
                    tensor in details and _is_constant(interpreter, tensor, details[tensor]["dtype"])):
                raise ModelFileError(f"{where} writes tensor {tensor}, which is the model's input, a constant "
                                     "or the output of another operator)")
            producer[tensor] = number
        if kind in _ARITY:
            fewest, most = _ARITY[kind]
            if not fewest <= len(inputs) <= most or (kind != "SPLIT" and len(outputs) != 1):
                raise ModelFileError(f"{where} has {len(inputs)} inputs and {len(outputs)} outputs)")
            missing = [p for p, tensor in enumerate(inputs) if tensor < 0 and p not in _OPTIONAL_INPUTS.get(kind, ())]
            if missing:
                raise ModelFileError(f"{where} lacks its input {missing[0]})")
    for op in ops:  # operators run in file order: each reads what earlier ones wrote
        later = [int(t) for t in op["inputs"] if producer.get(int(t), -1) >= op["index"]]
        if later:
            raise ModelFileError(f"{corrupt}: operator {op['index']}, {op['op_name']}, reads tensor {later[0]} "
                                 f"before operator {producer[later[0]]} writes it)")
    return producer


def _check_quantization(detail: dict, corrupt: str, activation: bool) -> None:
    """Scales and zero points kernels can compute with.

    Every scale finite and not negative; for 8- and 16-bit integers, zero
    points within the type (kernels index tables by them) and scales at most
    MAX_SCALE, and for such an activation (the input or an operator's output)
    at least MIN_ACTIVATION_SCALE: kernels divide by it, and the ratio of two
    scales must stay a finite float32 (a zero or denormal scale crashes XNNPACK).
    """
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", ()), dtype=np.float64)
    zero_points = np.asarray(params.get("zero_points", ()), dtype=np.int64)
    if not scales.size and not zero_points.size:
        return
    dtype = np.dtype(detail["dtype"])
    narrow = dtype.kind in "iu" and dtype.itemsize <= 2
    bad = bool(scales.size) and not (np.all(np.isfinite(scales)) and np.all(scales >= 0))
    if narrow and scales.size:
        bad = bad or float(scales.max()) > MAX_SCALE or (activation and float(scales.min()) < MIN_ACTIVATION_SCALE)
    if narrow and zero_points.size:
        info = np.iinfo(dtype)
        bad = bad or int(zero_points.min()) < info.min or int(zero_points.max()) > info.max
    if bad:
        raise ModelFileError(f"{corrupt}: tensor {detail['index']} ({dtype.name}) has an invalid quantization, "
                             f"scale {scales[:1].tolist()} and zero point {zero_points[:1].tolist()})")


def _tensor_bytes(detail: dict) -> int:
    elements = 1
    for dim in detail["shape"]:
        elements *= max(int(dim), 0)
    return elements * np.dtype(detail["dtype"]).itemsize


def _is_constant(interpreter, tensor: int, dtype) -> bool:
    """Whether a numeric tensor holds data before allocation: a weight or another constant.

    Only numeric tensors are probed: LiteRT's get_tensor crashes on a string
    tensor without data.
    """
    if np.dtype(dtype).kind not in "biufc":
        return False
    try:
        interpreter.get_tensor(tensor)
    except ValueError:
        return False
    return True


# Operators that only move or requantize scores: the op before them is what made the scores.
_PASS_THROUGH = {"DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE", "CAST"}


def _final_op(interpreter, output_name: str) -> Optional[str]:
    """The operator that computes the first output (SOFTMAX, LOGISTIC, FULLY_CONNECTED...), or None if unknown."""
    operators = getattr(interpreter, "_get_ops_details", None)
    if operators is None:
        return None
    details = interpreter.get_output_details()
    tensor = next((int(d["index"]) for d in details if d["name"] == output_name), None)
    writer = {int(t): op for op in operators() for t in op["outputs"]}
    for _ in range(len(writer)):
        op = writer.get(tensor)
        if op is None:
            return None
        if op["op_name"] not in _PASS_THROUGH or not len(op["inputs"]):
            return op["op_name"]
        tensor = int(op["inputs"][0])
    return None


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


class TFLiteBackend:
    """LiteRT interpreters, one per calling thread, since one Interpreter is not thread-safe.

    The first interpreter is built without allocating its tensors: its graph
    is checked (`_check_graph`), and the `Model` checks the tensor shapes
    against the metadata, before a hostile file can make the interpreter
    crash or allocate gigabytes.
    """

    def __init__(self, content: bytes, name: str, threads: Optional[int],
                 operator_codes: Sequence[OperatorCode] = (), interpreter: TFLiteInterpreter = "auto"):
        self._factory, self.kind, self.version = _import_tflite_interpreter(interpreter)
        if self.kind == "tflite-runtime":
            _check_op_versions(name, self.version, operator_codes)
        self._content = content
        self._name = name
        self._threads = threads
        self._local = threading.local()
        with silenced_fds(2):  # LiteRT prints an INFO line on its first interpreter
            first = self._build()
            try:
                _check_graph(first, name)
                self.inputs = tuple(self._spec(d) for d in first.get_input_details())
                self.outputs = tuple(self._spec(d) for d in first.get_output_details())
                self.final_op = _final_op(first, self.outputs[0].name) if self.outputs else None
            except (ValueError, RuntimeError, TypeError, KeyError) as exc:
                raise _explain_load_failure(self._name, self.kind, self.version, exc) from None
        self._local.unallocated = first

    @staticmethod
    def _spec(detail: dict) -> TensorSpec:
        signature = detail.get("shape_signature")
        shape = tuple(int(v) for v in (signature if signature is not None and len(signature) else detail["shape"]))
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), float(scale), int(zero_point))

    def _build(self):
        try:
            return self._factory(model_content=self._content, num_threads=self._threads)
        except (ValueError, RuntimeError) as exc:
            raise _explain_load_failure(self._name, self.kind, self.version, exc) from None

    def _interpreter(self):
        """This thread's interpreter, its tensors allocated, with its input and output indexes."""
        state = getattr(self._local, "state", None)
        if state is None:
            interpreter = getattr(self._local, "unallocated", None) or self._build()
            self._local.unallocated = None
            try:
                interpreter.allocate_tensors()
                detail = interpreter.get_input_details()[0]
                output = interpreter.get_output_details()[0]["index"]
            except (ValueError, RuntimeError) as exc:
                raise _explain_load_failure(self._name, self.kind, self.version, exc) from None
            # The details are dicts built on every call: looked up once, not per batch.
            state = self._local.state = [interpreter, detail["index"], output, tuple(detail["shape"])]
        return state

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The raw first output for a batch in the input's dtype.

        Raises:
            ModelFileError: the interpreter cannot run the model.
        """
        state = self._interpreter()
        interpreter, input_index, output_index, shape = state
        try:
            if shape != batch.shape:
                interpreter.resize_tensor_input(input_index, list(batch.shape))
                interpreter.allocate_tensors()
                state[3] = batch.shape
            interpreter.set_tensor(input_index, batch)
            interpreter.invoke()
            return interpreter.get_tensor(output_index)  # a copy: the interpreter reuses its own buffer
        except (ValueError, RuntimeError, IndexError) as exc:
            state[3] = None  # a failed resize leaves the shape unknown: set it again next time
            raise ModelFileError(
                f"{self._name}: {self.kind} {self.version} cannot run it ({_first_line(exc)})") from None

    @property
    def dynamic_batch(self) -> bool:
        return self.inputs[0].shape[0] == -1


_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
                "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxBackend:
    """One onnxruntime session; sessions are safe to call from several threads."""

    kind = "onnxruntime"

    def __init__(self, path: Path, threads: Optional[int]):
        try:
            import onnxruntime as ort
        except ImportError:
            raise DependencyError(
                "onnxruntime is not installed; install it with: pip install 'edgelite[onnx]'"
            ) from None
        self.version = ort.__version__
        self._name = path.name
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception classes
            raise ModelFileError(f"{path.name}: not a valid .onnx file ({_first_line(exc)})") from None
        self.inputs = tuple(self._spec(i, path.name) for i in self._session.get_inputs())
        self.outputs = tuple(self._spec(o, path.name) for o in self._session.get_outputs())
        self.custom_metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.final_op: Optional[str] = None  # onnxruntime does not show the graph; the Model checks the output

    @staticmethod
    def _spec(arg, name: str) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else -1 for d in (arg.shape or ()))
        if arg.type not in _ONNX_DTYPES:
            raise ModelFileError(f"{name}: unsupported ONNX tensor type {arg.type} for {arg.name}; "
                                 f"expected one of {', '.join(_ONNX_DTYPES)}")
        return TensorSpec(arg.name, shape, np.dtype(_ONNX_DTYPES[arg.type]))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The raw first output for a batch in the input's dtype.

        Raises:
            ModelFileError: onnxruntime cannot run the model.
        """
        try:
            return np.asarray(self._session.run([self.outputs[0].name], {self.inputs[0].name: batch})[0])
        except Exception as exc:  # onnxruntime raises its own exception classes
            raise ModelFileError(
                f"{self._name}: onnxruntime {self.version} cannot run it ({_first_line(exc)})") from None

    @property
    def dynamic_batch(self) -> bool:
        return self.inputs[0].shape[0] == -1


