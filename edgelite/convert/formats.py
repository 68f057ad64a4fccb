"""The output formats of `convert`: one registry entry per format.

    from edgelite.convert.formats import OUTPUT_FORMATS
    OUTPUT_FORMATS["onnx"].precisions   # ("float32", "int8")

Each entry says everything convert needs to know about a format: its name,
the file suffix of its artifacts, the precisions it can be written at, and
the exporter (one module per format, same signature, returning the written
`Path`). Adding a format is one more row here and one more exporter module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from edgelite.convert.onnx import OnnxInt8Variants, export_onnx
from edgelite.convert.tflite import TfliteInt8Variants, export_tflite
from edgelite.modes import Format, Precision

if TYPE_CHECKING:
    from edgelite.convert.options import Calibration, ConvertOptions
    from edgelite.convert.source import SourceModel

    Exporter = Callable[[SourceModel, Path, Precision, Calibration, ConvertOptions], Path]


@dataclass(frozen=True)
class OutputFormat:
    """One format convert writes.

    Attributes:
        name: the format's name on the command line (`--format`).
        suffix: the file suffix of its artifacts.
        precisions: the precisions it can be written at, in the order they are written.
        exporter: writes one artifact of `source` at a precision and returns its path.
        int8_variants: builds int8 variants with chosen layers left in float, for
            an agreement target (edgelite/convert/agreement.py); None if the format cannot.
    """

    name: Format
    suffix: str
    precisions: tuple[Precision, ...]
    exporter: Exporter
    int8_variants: Optional[Callable] = None

    def artifact_name(self, stem: str, precision: Precision) -> str:
        """The file name of this format's artifact of a checkpoint named `stem` at `precision`."""
        return f"{stem}_{precision}{self.suffix}"


OUTPUT_FORMATS: dict[Format, OutputFormat] = {entry.name: entry for entry in (
    OutputFormat("tflite", ".tflite", ("float32", "float16", "dynamic", "int8"), export_tflite,
                 TfliteInt8Variants),
    OutputFormat("onnx", ".onnx", ("float32", "int8"), export_onnx, OnnxInt8Variants),
)}
