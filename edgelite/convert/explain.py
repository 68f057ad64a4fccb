"""Say where int8 loses accuracy: per-layer quantization error from LiteRT's and onnxruntime's debuggers.

    from edgelite.convert.explain import explain_int8
    explanation = explain_int8(Path("model.keras"), ConvertOptions(calibration=Path("val")))
    for layer in explanation.worst("tflite", 5): print(layer.layer, layer.sqnr_db)

Both debuggers compare each int8 layer with float on the calibration images:

- TFLite: `tf.lite.experimental.QuantizationDebugger` instruments the int8 model
  with NumericVerify ops, so each layer's int8 output is compared with the float
  op run on the same (dequantized) int8 input: the error that layer adds. Its
  `rmse/scale` is the root-mean-square error in quantization steps (about 0.29
  is plain rounding; much more means clipping or a poorly fitting range).
- ONNX: `onnxruntime.quantization.qdq_loss_debug` saves every activation of the
  float and the QDQ model; `qdq SQNR` is the error of quantizing that tensor
  alone, `vs float SQNR` the error accumulated up to it.

SQNR (signal to quantization noise, 20 log10 |float| / |float - int8|, in dB)
is the common measure: lower is worse; each bit of precision is about 6 dB.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import AbstractSet, Iterable, Optional, Sequence

import numpy as np

from edgelite.convert.equalize import equalize_separable
from edgelite.convert.options import ConvertOptions
from edgelite.convert.source import SourceModel, load_checkpoint
from edgelite.errors import OptionError, missing_dependency
from edgelite.lazy import import_keras, quiet_native
from edgelite.modes import Format, Progress, no_progress
from edgelite.runtime.folder import pixel_batches, read_folder

# Layers are debugged on this many calibration images (all of them calibrate):
# the ONNX half keeps every activation of every image in memory.
DEBUG_IMAGES = 32
TOP = 10
MAX_SQNR_DB = 200.0  # an exact match


@dataclass(frozen=True)
class LayerError:
    """The quantization error of one int8 layer output.

    Attributes:
        format: "tflite" or "onnx".
        layer: the Keras layer the tensor comes from (or the tensor's short name).
        op: the operator that writes the tensor (CONV_2D, Conv, ...).
        tensor: the tensor's full name in the artifact.
        sqnr_db: signal to quantization noise of this layer's own error, in dB (lower is worse).
        rmse_per_step: TFLite: root-mean-square error divided by the quantization scale.
        scale: TFLite: the output's quantization scale.
        accumulated_sqnr_db: ONNX: SQNR against the float model's tensor (error up to here).
    """

    format: Format
    layer: str
    op: str
    tensor: str
    sqnr_db: float
    rmse_per_step: Optional[float] = None
    scale: Optional[float] = None
    accumulated_sqnr_db: Optional[float] = None


@dataclass(frozen=True)
class Int8Explanation:
    """Per-layer int8 error of a checkpoint, worst first per format."""

    images: int
    calibration_images: int
    layers: tuple[LayerError, ...]

    def worst(self, fmt: Format, count: int = TOP) -> list[LayerError]:
        """The `count` layers of `fmt` with the lowest SQNR (the largest error)."""
        return [layer for layer in self.layers if layer.format == fmt][:count]

    def to_dict(self, count: Optional[int] = None) -> dict:
        by_format: dict[str, list[dict]] = {}
        for layer in self.layers:
            rows = by_format.setdefault(layer.format, [])
            if count is None or len(rows) < count:
                rows.append(asdict(layer))
        return {"images": self.images, "calibration_images": self.calibration_images, "layers": by_format}


def explain_int8(checkpoint: Path, options: ConvertOptions, images: int = DEBUG_IMAGES,
                 progress: Progress = no_progress) -> Int8Explanation:
    """Run LiteRT's and onnxruntime's quantization debuggers on `checkpoint`.

    The int8 models are made as `convert` makes them (same calibration images and
    settings, separable convolutions equalized unless `options.equalize` is off)
    for each format in `options.formats`; each layer is then compared
    with float on `images` of the calibration images, spread over the sample.

    Raises:
        OptionError: no calibration folder.
        EdgeliteError: an unreadable checkpoint or images, a failed conversion.
    """
    if options.calibration is None:
        raise OptionError("--explain-int8 needs calibration images: pass --calibration DIR")
    progress("explain int8: loading checkpoint", 0, 1)
    with quiet_native():
        source = load_checkpoint(Path(checkpoint), options.labels, options.preprocess, options.interpolation,
                                 options.decode, label_folders=(options.calibration, options.check))
    meta = source.metadata
    items = read_folder(options.calibration, limit=options.max_calibration_images)
    calibration = np.concatenate(list(pixel_batches([i.path for i in items], meta.input_height, meta.input_width,
                                                    meta.interpolation, decode=meta.decode)))
    debug = debug_sample(calibration, images)
    names = keras_layer_names(source.model)
    layers: list[LayerError] = []
    with quiet_native():
        if options.equalize:  # as the exporters do before int8, once for both formats here
            model, _ = equalize_separable(source.model, (calibration[i:i + 32] for i in range(0, len(calibration), 32)))
            source, options = dataclasses.replace(source, model=model), dataclasses.replace(options, equalize=False)
        if "tflite" in options.formats:
            progress("explain int8: LiteRT quantization debugger", 0, 2)
            layers += tflite_layer_errors(source, calibration, debug, names)
        if "onnx" in options.formats:
            progress("explain int8: onnxruntime qdq_loss_debug", 1, 2)
            layers += onnx_layer_errors(source, calibration, debug, names, options)
    progress("explain int8: done", 2, 2)
    return Int8Explanation(len(debug), len(calibration), tuple(layers))


def debug_sample(calibration: np.ndarray, images: int = DEBUG_IMAGES) -> np.ndarray:
    """`images` of the calibration images, spread over the sample (it is sorted by path, so by class)."""
    return calibration[np.unique(np.linspace(0, len(calibration) - 1, max(1, images)).round().astype(int))]


def keras_layer_names(model) -> set[str]:
    """Names of the model's layers, nested models' layers included: what converted tensors are named after."""
    return {layer.name for layer in model.layers} | _inner_layer_names(model)


def rank_layers(fmt: Format, source: SourceModel, calibration: np.ndarray,
                options: ConvertOptions) -> list[LayerError]:
    """One format's per-layer int8 error on `DEBUG_IMAGES` of `calibration`, worst first (convert's target search).

    `source` is taken as it is (the caller equalizes it as the exporters do).
    """
    debug, names = debug_sample(calibration), keras_layer_names(source.model)
    if fmt == "tflite":
        return tflite_layer_errors(source, calibration, debug, names)
    return onnx_layer_errors(source, calibration, debug, names, dataclasses.replace(options, equalize=False))


def tflite_layer_errors(source: SourceModel, calibration: np.ndarray, debug: np.ndarray,
                        keras_names: AbstractSet[str] = frozenset()) -> list[LayerError]:
    """LiteRT's QuantizationDebugger on the int8 model `convert` writes (with float I/O), worst first."""
    tf, _ = import_keras("convert")
    converter = tf.lite.TFLiteConverter.from_keras_model(source.model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None].astype(np.float32)] for image in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: ([image[None].astype(np.float32)] for image in debug))
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    sqnr = _tflite_sqnr(tf, debugger.quant_model, debug)
    layers = []
    for row in csv.DictReader(dump):
        scale = float(row["scale"])
        rmse = math.sqrt(max(float(row["mean_squared_error"]), 0.0))
        layers.append(LayerError("tflite", keras_layer(row["tensor_name"], keras_names), row["op_name"],
                                 row["tensor_name"], sqnr.get(int(row["tensor_idx"]), 0.0),
                                 rmse_per_step=rmse / scale if scale else None, scale=scale))
    return sorted(layers, key=lambda layer: layer.sqnr_db)


def _tflite_sqnr(tf, debug_model: bytes, debug: np.ndarray) -> dict[int, float]:
    """SQNR of each verified int8 tensor (by index) in the debugger's instrumented model.

    The debugger's own interpreter reuses the memory of intermediate tensors, so
    the float side of each NumericVerify op is read here from one that keeps them.
    """
    interpreter = tf.lite.Interpreter(model_content=debug_model, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    verified = [op["inputs"] for op in interpreter._get_ops_details() if op["op_name"] == "NumericVerify"]
    signal: dict[int, float] = {}
    noise: dict[int, float] = {}
    model_input = interpreter.get_input_details()[0]["index"]
    for image in debug:
        interpreter.set_tensor(model_input, image[None].astype(np.float32))
        interpreter.invoke()
        for quantized, reference in verified:
            params = tensors[quantized]["quantization_parameters"]
            scale, zero_point = float(params["scales"][0]), int(params["zero_points"][0])
            expected = interpreter.get_tensor(reference).astype(np.float64)
            error = (interpreter.get_tensor(quantized).astype(np.float64) - zero_point) * scale - expected
            signal[quantized] = signal.get(quantized, 0.0) + float(np.square(expected).sum())
            noise[quantized] = noise.get(quantized, 0.0) + float(np.square(error).sum())
    return {index: _sqnr_from_power(signal[index], noise[index]) for index in signal}


def onnx_layer_errors(source: SourceModel, calibration: np.ndarray, debug: np.ndarray,
                      keras_names: AbstractSet[str] = frozenset(),
                      options: Optional[ConvertOptions] = None) -> list[LayerError]:
    """onnxruntime's qdq_loss_debug on the float32 and int8 ONNX models `convert` writes, worst first."""
    try:
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationDataReader
        from onnxruntime.quantization.shape_inference import quant_pre_process
        from onnxruntime.quantization.qdq_loss_debug import (collect_activations, compute_activation_error,
                                                             compute_signal_to_quantization_noice_ratio,
                                                             create_activation_matching,
                                                             modify_model_output_intermediate_tensors)
    except ImportError:
        raise missing_dependency("onnxruntime", "convert") from None
    from edgelite.convert.onnx import export_onnx

    options = options or ConvertOptions(formats=("onnx",), precisions=("float32",))

    def batches() -> Iterable[np.ndarray]:
        return (calibration[start:start + 32].astype(np.float32) for start in range(0, len(calibration), 32))

    class Reader(CalibrationDataReader):
        def __init__(self, name: str):
            self._images = iter(debug)
            self._name = name

        def get_next(self):
            image = next(self._images, None)
            return None if image is None else {self._name: image[None].astype(np.float32)}

    with tempfile.TemporaryDirectory(prefix="edgelite-explain-") as folder:
        work = Path(folder)
        export_onnx(source, work / "exported.onnx", "float32", batches, options)
        # the quantizer works on the pre-processed graph: its tensor names are the QDQ model's
        quant_pre_process(str(work / "exported.onnx"), str(work / "float32.onnx"), skip_symbolic_shape=True)
        export_onnx(source, work / "int8.onnx", "int8", batches, options)
        activations = {}
        for precision in ("float32", "int8"):
            path, augmented = work / f"{precision}.onnx", work / f"{precision}-all-outputs.onnx"
            modify_model_output_intermediate_tensors(str(path), str(augmented))
            name = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
            activations[precision] = collect_activations(str(augmented), Reader(name),
                                                         execution_providers=["CPUExecutionProvider"])
        writers = {output: node.op_type for node in onnx.load(str(work / "float32.onnx")).graph.node
                   for output in node.output}
        int8_writers = {output: node.op_type for node in onnx.load(str(work / "int8.onnx")).graph.node
                        for output in node.output}
    # keep the tensors a float layer wrote (not the graph input, not dequantized weights)
    matched = {tensor: match for tensor, match in
               create_activation_matching(activations["int8"], activations["float32"]).items()
               if tensor in writers and match.get("float") and match.get("pre_qdq") and match.get("post_qdq")}
    errors = compute_activation_error(matched)
    for tensor, match in matched.items():
        if writers[tensor] == "Relu" and int8_writers.get(tensor) != "Relu":
            # The quantizer dropped this ReLU (the uint8 range starting at 0 clips instead): its
            # tensor is written by the layer before, so compare after the ReLU it stands for.
            before = [np.maximum(values, 0) for values in match["pre_qdq"]]
            errors[tensor]["qdq_err"] = compute_signal_to_quantization_noice_ratio(before, match["post_qdq"])
    layers = []
    for tensor, error in errors.items():
        layers.append(LayerError("onnx", keras_layer(tensor, keras_names), writers[tensor], tensor,
                                 _capped(error["qdq_err"]) or 0.0,
                                 accumulated_sqnr_db=_capped(error.get("xmodel_err"))))
    return sorted(layers, key=lambda layer: layer.sqnr_db)


def keras_layer(tensor: str, keras_names: AbstractSet[str]) -> str:
    """The Keras layer a converted tensor comes from, read from its name; else its first name part.

    Converters name tensors after the layer scopes ("model_1/block1_sep1_1/separable_conv2d;..."),
    with a "_1"-style suffix per call.
    """
    parts = [part for name in tensor.split(";") for part in name.split("/")]
    for part in parts:
        if part in keras_names:
            return part
        bare = re.sub(r"_\d+$", "", part)
        if bare in keras_names and bare != part:
            return bare
    return tensor.split(";")[0]


def _inner_layer_names(model) -> set[str]:
    """Layer names of nested models (a wrapped checkpoint holds the original model as one layer)."""
    names: set[str] = set()
    for layer in model.layers:
        if hasattr(layer, "layers"):
            names |= {inner.name for inner in layer.layers} | _inner_layer_names(layer)
    return names


def _sqnr_from_power(signal: float, noise: float) -> float:
    eps = float(np.finfo(np.float32).eps)
    return min(10 * math.log10(max(signal, eps) / max(noise, eps)), MAX_SQNR_DB)


def _capped(value: Optional[float]) -> Optional[float]:
    """SQNR in dB, with an exact match (infinite SQNR) read as 200 dB, so it sorts and serialises."""
    return None if value is None or math.isnan(value) else min(float(value), MAX_SQNR_DB)


def format_rows(layers: Sequence[LayerError]) -> list[list[str]]:
    """Table rows (layer, op, SQNR, rmse/scale or vs-float SQNR) for the CLI and the benchmarks."""
    rows = []
    for layer in layers:
        extra = (f"{layer.rmse_per_step:.2f}" if layer.rmse_per_step is not None else
                 f"{layer.accumulated_sqnr_db:.1f}" if layer.accumulated_sqnr_db is not None else "-")
        rows.append([layer.layer, layer.op, f"{layer.sqnr_db:.1f}", extra])
    return rows


__all__ = ["DEBUG_IMAGES", "Int8Explanation", "LayerError", "debug_sample", "explain_int8", "format_rows", "rank_layers",
           "keras_layer", "keras_layer_names", "onnx_layer_errors", "tflite_layer_errors"]
