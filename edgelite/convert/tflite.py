"""Write a TFLite artifact at one precision, with edgelite metadata inside."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgelite.atomic import write_bytes_atomic
from edgelite.convert.equalize import equalize_separable
from edgelite.convert.int8_graph import fuse_relu_into_add
from edgelite.convert.source import SourceModel
from edgelite.errors import ConversionError
from edgelite.lazy import import_keras
from edgelite.modes import Precision
from edgelite.runtime.metadata import METADATA_KEY, ArtifactMetadata

if TYPE_CHECKING:  # options lists the formats, so the exporters import it for their types only
    from edgelite.convert.options import Calibration, ConvertOptions


def export_tflite(source: SourceModel, path: Path, precision: Precision,
                  calibration: Calibration, options: ConvertOptions) -> Path:
    """Convert `source` to a .tflite file at `precision` and return its path.

    Args:
        source: the model (raw 0-255 input) and its metadata.
        path: where to write the artifact.
        precision: float32, float16, dynamic (int8 weights, float activations) or
            int8 (full integer, calibrated).
        calibration: a callable returning an iterable of (N, H, W, 3) float32
            batches of raw pixels (read for int8 only; `ConvertOptions` makes
            sure int8 has real images).
        options: integer_io (uint8 or int8 input/output of the full-integer
            model), compat (an older runtime to stay loadable in) and equalize
            (separable convolutions' channels before int8) apply here.
    """
    tf, _ = import_keras("convert")
    model = source.model
    if precision == "int8" and options.equalize:
        model, _ = equalize_separable(model, calibration())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision in ("float16", "dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "dynamic" and options.compat == "tflite-runtime-2.14":
        # Per-channel int8 weights with float activations make FULLY_CONNECTED v12
        # (TFLite >= 2.17); one scale per Dense layer keeps it at v9 (>= 2.3).
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        _set_int8(tf, converter, calibration, options)
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # the converter raises ConverterError and friends
        raise ConversionError(f"TFLite {precision} conversion failed: {str(exc).strip().splitlines()[0]}") from None
    if precision == "int8":
        # a residual ADD's requantizing RELU would split the graph into XNNPACK partitions (int8_graph.py)
        flatbuffer, _ = fuse_relu_into_add(bytes(flatbuffer))
    content = embed_metadata(bytes(flatbuffer), source.metadata.with_precision(precision))
    write_bytes_atomic(path, content)
    return path


def _set_int8(tf, converter, calibration: Calibration, options: ConvertOptions) -> None:
    """Full-integer settings: calibrated on `calibration`, integer input and output."""
    def representative():
        for batch in calibration():
            for image in batch:
                yield [image[None].astype(np.float32)]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = tf.uint8 if options.integer_io == "uint8" else tf.int8
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type


class TfliteInt8Variants:
    """int8 TFLite builds of one model, calibrated once, with chosen ops left in float.

    LiteRT's quantizer takes the output tensor names of ops to leave in float
    (`denylisted_nodes`, what its QuantizationDebugger uses for selective
    quantization); those ops then run in float between a DEQUANTIZE and a
    QUANTIZE. The calibrated model is quantized again for each variant, which
    takes well under a second, so only calibration runs once. A variant whose
    output op is in float has float32 output; the input keeps `integer_io`.
    """

    def __init__(self, source: SourceModel, calibration: Calibration, options: ConvertOptions, work: Path):
        tf, _ = import_keras("convert")
        model = source.model
        if options.equalize:
            model, _ = equalize_separable(model, calibration())
        self._source = dataclasses.replace(source, model=model)
        self._io_type = tf.uint8 if options.integer_io == "uint8" else tf.int8
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        _set_int8(tf, converter, calibration, options)
        converter._experimental_calibrate_only = True  # what QuantizationDebugger does: quantize later, per variant
        try:
            self._calibrated = converter.convert()
        except Exception as exc:  # the converter raises ConverterError and friends
            raise ConversionError(f"TFLite int8 calibration failed: {str(exc).strip().splitlines()[0]}") from None
        interpreter = tf.lite.Interpreter(model_content=self._calibrated)
        self._outputs = {detail["name"] for detail in interpreter.get_output_details()}

    @property
    def source(self) -> SourceModel:
        """The model the variants are built from (equalized when `options.equalize`)."""
        return self._source

    def candidates(self, errors) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Per LiteRT debugger row (worst first): the op's output tensor, the name the quantizer skips, and its layer."""
        return [((e.tensor,), (e.layer,)) for e in errors if e.op not in ("QUANTIZE", "DEQUANTIZE")]

    def build(self, nodes, layers, path: Path) -> Path:
        """Write the int8 artifact with the ops writing `nodes` in float; its metadata lists `layers`."""
        from tensorflow.lite.python.convert import mlir_quantize

        tf, _ = import_keras("convert")
        # An output op kept in float gives float scores: quantizing them again (steps of 1/256 for a
        # softmax) ties and swaps close classes, which alone cost 0.6% top-1 agreement on the 10-class
        # scratch CNN with every op in float.
        output_type = tf.float32 if self._outputs & set(nodes) else self._io_type
        try:
            flatbuffer = mlir_quantize(self._calibrated, input_data_type=self._io_type,
                                       output_data_type=output_type, denylisted_nodes=list(nodes))
        except Exception as exc:
            raise ConversionError(f"TFLite int8 with {len(nodes)} layers in float failed: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
        flatbuffer, _ = fuse_relu_into_add(bytes(flatbuffer))
        metadata = dataclasses.replace(self._source.metadata.with_precision("int8"), float_layers=tuple(dict.fromkeys(layers)))
        write_bytes_atomic(path, embed_metadata(flatbuffer, metadata))
        return path


def embed_metadata(flatbuffer: bytes, metadata: ArtifactMetadata) -> bytes:
    """Return the flatbuffer with an `edgelite` entry in its metadata table."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != METADATA_KEY]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata.to_json().encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
