"""Write an ONNX artifact (float32, or int8 with static calibrated quantization)."""

from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgelite.atomic import atomic_path
from edgelite.convert.equalize import equalize_separable
from edgelite.convert.source import SourceModel
from edgelite.errors import ConversionError, missing_dependency
from edgelite.modes import Precision
from edgelite.runtime.metadata import METADATA_KEY, ArtifactMetadata

if TYPE_CHECKING:  # options lists the formats, so the exporters import it for their types only
    from edgelite.convert.options import Calibration, ConvertOptions


def _write_float_graph(source: SourceModel, model, path: Path) -> Path:
    """Write the float ONNX graph to `path` and return `path`.

    A PyTorch or ONNX source's own graph (tf2onnx's export of the Keras model
    converted from it would name none of its nodes), else Keras's export of `model`.
    """
    if source.onnx_graph is not None:
        path.write_bytes(source.onnx_graph)
        return path
    try:
        model.export(str(path), format="onnx", verbose=False)
    except Exception as exc:  # tf2onnx raises many kinds
        raise ConversionError(f"ONNX export failed: {str(exc).strip().splitlines()[0]}") from None
    return path


def export_onnx(source: SourceModel, path: Path, precision: Precision,
                calibration: Calibration, options: ConvertOptions) -> Path:
    """Convert `source` to a .onnx file at `precision` and return its path.

    float32 goes through Keras's ONNX exporter (tf2onnx underneath). int8 is
    onnxruntime's static quantization in QDQ form, per-channel int8 weights and
    uint8 activations calibrated on the given images; its input stays float32.
    Weights use 7 bits (reduce_range): on x86 CPUs without VNNI, onnxruntime's
    uint8 x int8 kernels sum pairs of products in int16 and saturate with full
    8-bit weights (on the demo model top-1 agreement rose from 91% to 99%).
    Before int8, `options.equalize` evens out the channels of each separable
    convolution's depthwise output (edgelite/convert/equalize.py); no other
    setting of `options` applies to ONNX.
    """
    try:
        import onnx
    except ImportError:
        raise missing_dependency("onnx", "convert") from None
    model = source.model
    if precision == "int8" and options.equalize and source.onnx_graph is None:
        model, _ = equalize_separable(model, calibration())
    with tempfile.TemporaryDirectory(prefix="edgelite-onnx-") as work:
        float_path = _write_float_graph(source, model, Path(work) / "float32.onnx")
        if precision == "int8":
            result = Path(work) / "int8.onnx"
            _quantize_static(float_path, result, calibration, Path(work))
        else:
            result = float_path
        model = onnx.load(str(result))
        _set_metadata(model, source.metadata.with_precision(precision))
        with atomic_path(path) as temp:
            onnx.save(model, str(temp))
    return path


def _set_metadata(model, metadata: ArtifactMetadata) -> None:
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = metadata.to_json()


def _quantize_static(float_path: Path, out: Path, calibration: Calibration, work: Path) -> None:
    _quantize_prepared(_prepare(float_path, work), out, calibration)


def _prepare(float_path: Path, work: Path) -> Path:
    """onnxruntime's pre-processing (shape inference, graph clean-up) the quantizer expects."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise missing_dependency("onnxruntime", "convert") from None
    prepared = work / "prepared.onnx"
    quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    return prepared


def _quantize_prepared(prepared: Path, out: Path, calibration: Calibration, reduce_range: bool = True,
                       **extra) -> None:
    """Static QDQ quantization of a prepared model; `extra` goes to quantize_static (nodes_to_exclude, ...)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise missing_dependency("onnxruntime", "convert") from None
    import onnxruntime as ort

    input_name = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._images = (image[None] for batch in calibration() for image in batch)

        def get_next(self):
            image = next(self._images, None)
            return None if image is None else {input_name: image.astype(np.float32)}

    quantize_static(
        str(prepared), str(out), Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        reduce_range=reduce_range,
        **extra,
    )


_WEIGHTED = ("Conv", "ConvTranspose", "Gemm")


def _layer_names(model) -> set[str]:
    """The model's layer names, nested models' included (as convert/explain.py reads them)."""
    names = set()
    for layer in model.layers:
        names.add(layer.name)
        if hasattr(layer, "layers"):
            names |= _layer_names(layer)
    return names


def _layer_of(node, names: set[str]) -> str:
    """The Keras layer an ONNX node comes from: the first scope of its name that is a layer (`_1` suffix aside)."""
    for part in node.name.split("/"):
        for name in (part, re.sub(r"_\d+$", "", part)):
            if name in names:
                return name
    return node.name  # the ops onnxruntime's WeightBiasQuantization pass rewrites


class OnnxInt8Variants:
    """int8 ONNX builds of one model, calibrated once, with chosen nodes left in float.

    onnxruntime's quantize_static leaves `nodes_to_exclude` in float; the
    calibrated ranges are computed on the first build and read back from a
    calibration cache by the others (they do not depend on what is excluded).

    A float Conv or Gemm that reads a DequantizeLinear and writes a
    QuantizeLinear does not stay float when the model is run: onnxruntime's
    graph optimizer quantizes its weights again (per tensor, so worse than
    the per-channel weights it replaced). Measured on the fragile test model,
    it stays float when the op reading its output is left in float too, so a
    weighted node is ranked together with its readers.
    """

    def __init__(self, source: SourceModel, calibration: Calibration, options: ConvertOptions, work: Path):
        import onnx

        model = source.model
        if options.equalize and source.onnx_graph is None:
            model, _ = equalize_separable(model, calibration())
        self._source = dataclasses.replace(source, model=model)
        self._calibration = calibration
        # as export_onnx writes it, so the debugger's tensor names (from the source's graph) name nodes here
        float_path = _write_float_graph(source, model, work / "float32.onnx")
        self._prepared = _prepare(float_path, work)
        self._cache = work / "calibration.json"
        nodes = onnx.load(str(self._prepared)).graph.node
        self._writers = {tensor: node for node in nodes for tensor in node.output}
        self._readers: dict[str, list] = {}
        for node in nodes:
            for tensor in node.input:
                self._readers.setdefault(tensor, []).append(node)

    @property
    def source(self) -> SourceModel:
        """The model the variants are built from (equalized when `options.equalize`)."""
        return self._source

    def candidates(self, errors) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Per qdq_loss_debug row (worst first): the nodes writing that tensor, grouped, and their layers."""
        names = _layer_names(self._source.model)
        ranked = []
        for error in errors:
            node = self._writers.get(error.tensor)
            if node is None:
                continue
            group = [node]
            if node.op_type == "Relu":  # the quantizer folds a ReLU into the op before: keep that one too
                group += [self._writers[node.input[0]]] if node.input[0] in self._writers else []
            for member in list(group):
                if member.op_type in _WEIGHTED:
                    group += self._readers_past_relu(member)
            ranked.append((tuple(member.name for member in group),
                           tuple(_layer_of(member, names) for member in group)))
        return ranked

    def _readers_past_relu(self, node) -> list:
        readers = [reader for tensor in node.output for reader in self._readers.get(tensor, [])]
        return [after for reader in readers
                for after in ([reader] + self._readers_past_relu(reader) if reader.op_type == "Relu" else [reader])]

    def build(self, nodes, layers, path: Path) -> Path:
        """Write the int8 artifact with `nodes` in float; its metadata lists `layers`."""
        import onnx

        result = path.with_name(path.stem + "-quantized.onnx")
        _quantize_prepared(self._prepared, result, self._calibration, nodes_to_exclude=list(nodes),
                           calibration_cache_path=str(self._cache))
        model = onnx.load(str(result))
        result.unlink()
        float_layers = tuple(dict.fromkeys(layers))
        _set_metadata(model, dataclasses.replace(self._source.metadata.with_precision("int8"),
                                                 float_layers=float_layers))
        with atomic_path(path) as temp:
            onnx.save(model, str(temp))
        return path
