"""What `edgelite info` shows: a plain dict describing an artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Union

from edgelite.runtime.backends import TensorSpec
from edgelite.runtime.model import load
from edgelite.runtime.op_versions import minimum_runtime, requirements


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype.name,
            "scale": spec.scale, "zero_point": spec.zero_point}


def describe(path: Union[str, Path]) -> dict[str, Any]:
    """Inputs, outputs, quantization, metadata, operators and size of an artifact."""
    model = load(path)
    info: dict[str, Any] = {
        "file": str(model.path),
        "size_bytes": model.path.stat().st_size,
        "format": model.format,
        "backend": model.backend_name,
        "inputs": [_tensor(s) for s in model.backend.inputs],
        "outputs": [_tensor(s) for s in model.backend.outputs],
        "metadata": json.loads(model.metadata.to_json()) if model.metadata else None,
        "assumptions": model.assumptions,
        "manifest": model.manifest.to_dict() if model.manifest else None,
    }
    if model.tflite is not None:
        codes = model.tflite.operator_codes
        info["operators"] = [{"name": r.op, "version": r.version, "min_runtime": r.runtime}
                             for r in requirements(codes)]
        info["min_runtime"] = minimum_runtime(codes)
    return info
