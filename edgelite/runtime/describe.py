"""One description of a loaded model, and the shapes `edgelite info`, the server and the Lambda handler show.

`describe_model` gathers the facts once; `ModelDescription.info()` is what
`edgelite info` prints, `served()` what both serving protocols show about a
model, `brief()` the Lambda handler's answer to GET.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from edgelite.runtime.backends import TensorSpec
from edgelite.runtime.model import Model, load
from edgelite.runtime.op_versions import minimum_runtime, requirements


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype.name,
            "scale": spec.scale, "zero_point": spec.zero_point}


@dataclass(frozen=True)
class ModelDescription:
    """What is known about a loaded model: its file, tensors, classes, metadata and operators.

    Attributes:
        path: the artifact.
        size_bytes: its size on disk when it was described.
        format: "tflite" or "onnx".
        backend: the interpreter running it.
        labels: class names in score order.
        input_height: model input height in pixels.
        input_width: model input width in pixels.
        inputs: input tensors (name, shape, dtype, quantization).
        outputs: output tensors.
        metadata: the edgelite metadata as a plain dict, None for a foreign file.
        assumptions: what was assumed for a file without metadata.
        operators: TFLite operators with their versions and minimum runtime (None for ONNX).
        min_runtime: the oldest TFLite runtime that runs every operator (None for ONNX).
        manifest: the check against a `manifest.json` beside the file (None when none lists it).
    """

    path: Path
    size_bytes: int
    format: str
    backend: str
    labels: tuple[str, ...]
    input_height: int
    input_width: int
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    metadata: Optional[dict[str, Any]]
    assumptions: tuple[str, ...]
    operators: Optional[tuple[dict[str, Any], ...]] = None
    min_runtime: Optional[str] = None
    manifest: Optional[dict[str, Any]] = None

    def _meta(self, key: str) -> Any:
        return self.metadata.get(key) if self.metadata else None

    def info(self) -> dict[str, Any]:
        """`edgelite info`'s shape: tensors, metadata, operators and size."""
        info: dict[str, Any] = {"file": str(self.path), "size_bytes": self.size_bytes, "format": self.format,
                                "backend": self.backend, "inputs": list(self.inputs), "outputs": list(self.outputs),
                                "metadata": self.metadata, "assumptions": list(self.assumptions),
                                "manifest": self.manifest}
        if self.operators is not None:
            info["operators"] = list(self.operators)
            info["min_runtime"] = self.min_runtime
        return info

    def served(self) -> dict[str, Any]:
        """What a client of the server needs: file, backend, classes, input size, provenance."""
        return {"file": self.path.name, "format": self.format, "backend": self.backend, "labels": list(self.labels),
                "input_height": self.input_height, "input_width": self.input_width,
                "precision": self._meta("precision"), "source_sha256": self._meta("source_sha256"),
                "edgelite_version": self._meta("edgelite_version"), "assumptions": list(self.assumptions)}

    def brief(self) -> dict[str, Any]:
        """The least a caller needs to send an image: the model's name, classes and input size."""
        return {"model": self.path.stem, "labels": list(self.labels), "input_height": self.input_height,
                "input_width": self.input_width}


def describe_model(model: Model) -> ModelDescription:
    """Describe a loaded model (reads nothing but the file's size)."""
    operators = min_runtime = None
    if model.tflite is not None:
        codes = model.tflite.operator_codes
        operators = tuple({"name": r.op, "version": r.version, "min_runtime": r.runtime} for r in requirements(codes))
        min_runtime = minimum_runtime(codes)
    return ModelDescription(
        path=model.path, size_bytes=model.path.stat().st_size, format=model.format, backend=model.backend_name,
        labels=tuple(model.labels), input_height=model.height, input_width=model.width,
        inputs=tuple(_tensor(s) for s in model.backend.inputs),
        outputs=tuple(_tensor(s) for s in model.backend.outputs),
        metadata=json.loads(model.metadata.to_json()) if model.metadata else None,
        assumptions=tuple(model.assumptions), operators=operators, min_runtime=min_runtime,
        manifest=model.manifest.to_dict() if model.manifest else None)


def describe(path: Union[str, Path]) -> dict[str, Any]:
    """Inputs, outputs, quantization, metadata, operators and size of an artifact (`edgelite info`)."""
    return describe_model(load(path)).info()
