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
from edgelite.silence import silenced_fds
from edgelite.runtime.tflite_format import OperatorCode


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


class TFLiteBackend:
    """LiteRT interpreters, one per calling thread, since one Interpreter is not thread-safe."""

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
            interpreter = self._interpreter()
        self.inputs = tuple(self._spec(d) for d in interpreter.get_input_details())
        self.outputs = tuple(self._spec(d) for d in interpreter.get_output_details())

    @staticmethod
    def _spec(detail: dict) -> TensorSpec:
        signature = detail.get("shape_signature")
        shape = tuple(int(v) for v in (signature if signature is not None and len(signature) else detail["shape"]))
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), float(scale), int(zero_point))

    def _interpreter(self):
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            try:
                interpreter = self._factory(model_content=self._content, num_threads=self._threads)
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise _explain_load_failure(self._name, self.kind, self.version, exc) from None
            self._local.interpreter = interpreter
        return interpreter

    def run(self, batch: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter()
        detail = interpreter.get_input_details()[0]
        if tuple(detail["shape"]) != batch.shape:
            interpreter.resize_tensor_input(detail["index"], list(batch.shape))
            interpreter.allocate_tensors()
            detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()

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
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception classes
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path.name}: not a valid .onnx file ({first})") from None
        self.inputs = tuple(self._spec(i) for i in self._session.get_inputs())
        self.outputs = tuple(self._spec(o) for o in self._session.get_outputs())
        self.custom_metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    @staticmethod
    def _spec(arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
        if arg.type not in _ONNX_DTYPES:
            raise ModelFileError(f"unsupported ONNX tensor type {arg.type} for {arg.name}")
        return TensorSpec(arg.name, shape, np.dtype(_ONNX_DTYPES[arg.type]))

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self.outputs[0].name], {self.inputs[0].name: batch})[0]

    @property
    def dynamic_batch(self) -> bool:
        return self.inputs[0].shape[0] == -1


