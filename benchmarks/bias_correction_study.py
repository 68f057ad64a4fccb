"""Issue 18: empirical bias correction of edgelite's int8 ONNX artifact, measured.

    python benchmarks/bias_correction_study.py CHECKPOINT [--mode sequential|passes] [--passes K]
        [--correction-images calibration|other] [--seed N] [--count N] [--only all|depthwise] [--work DIR] [--out FILE.json]

The idea is Nagel et al., "Data-Free Quantization Through Weight Equalization
and Bias Correction" (2019), in its empirical form (also Finkelstein et al.,
2019): rounding the weights to int8 shifts the mean of each output channel of a
convolution or dense layer, most in depthwise convolutions (nine weights per
channel), and a shift in every channel's mean adds up through the network.
The shift is measured on images and subtracted from the layer's bias.

This study builds the int8 ONNX model as `convert` does (equalized separable
convolutions, onnxruntime QDQ, per-channel 7-bit weights, uint8 activations,
min-max on convert's 500 training images), then, per Conv/Gemm in graph order:
the mean per output channel of its int8 output (the uint8 tensor its
QuantizeLinear writes, dequantized, read from the fused model onnxruntime runs)
minus the same tensor of the float32 ONNX model is subtracted from its int32
bias (scale: input scale x weight scale). Depthwise convolutions have no bias in
tf2onnx's graph; one is added (int32 zeros and a DequantizeLinear, as the
quantizer writes the others). `sequential` corrects one layer per run over the
correction images (each measured with its corrected predecessors); `passes`
corrects every layer at once, K times.

Reported on all 341 clothing-small validation images (never used to compute
a correction): top-1 agreement with the Keras model and accuracy, plain and
corrected, and the single-image latency of both timed in turn.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

DATA = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small"))
CALIBRATION_IMAGES = 500  # convert's default budget
HELD_OUT_TRAINING = 1000  # training images neither calibrating nor correcting: a second, larger check
BATCH = 25
WEIGHTED = ("Conv", "Gemm")


def machine() -> dict:
    """CPU model and flags from /proc/cpuinfo, core count and load average."""
    info: dict = {"cores": os.cpu_count(), "python": platform.python_version()}
    fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    info["cpu"] = fields.get("model name")
    flags = set(fields.get("flags", "").split())
    info["flags"] = sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma", "sse4_2"})
    info["load_average"] = os.getloadavg()
    return info


def build(checkpoint: Path, work: Path, correction_images: str, seed: int = 0,
          count: int = CALIBRATION_IMAGES) -> dict:
    """float32 and int8 ONNX models as convert builds them, and the images (cached in `work`)."""
    from edgelite.convert.equalize import equalize_separable
    from edgelite.convert.onnx import _prepare, _quantize_prepared
    from edgelite.convert.source import load_checkpoint
    from edgelite.runtime.folder import pixel_batches, read_folder

    work.mkdir(parents=True, exist_ok=True)
    cached = work / f"images-{correction_images}-{seed}-{count}.npz"
    if cached.is_file() and (work / "int8.onnx").is_file():
        return dict(np.load(cached))
    source = load_checkpoint(checkpoint, None, None, None, None, label_folders=(DATA / "train",))
    meta = source.metadata

    def pixels(items) -> np.ndarray:
        return np.concatenate(list(pixel_batches([i.path for i in items], meta.input_height, meta.input_width,
                                                 meta.interpolation, decode=meta.decode)))

    calibration_items = read_folder(DATA / "train", limit=CALIBRATION_IMAGES)  # convert's own sample
    validation_items = read_folder(DATA / "validation")
    calibration, validation = pixels(calibration_items), pixels(validation_items)
    taken = {item.path for item in calibration_items}
    rest = random.Random(1).sample([item for item in read_folder(DATA / "train") if item.path not in taken],
                                   HELD_OUT_TRAINING)
    held_out_items = rest[:HELD_OUT_TRAINING]  # neither calibration nor correction in any setting
    others = sorted(set(read_folder(DATA / "train")) - set(calibration_items) - set(held_out_items),
                    key=lambda item: item.path)
    # "other": `count` training images, none of them a calibration or held-out image
    correction = calibration if correction_images == "calibration" else \
        pixels(random.Random(seed).sample(others, count))
    held_out = pixels(held_out_items)
    truth = np.array([meta.labels.index(item.label) for item in validation_items])
    held_out_truth = np.array([meta.labels.index(item.label) for item in held_out_items])
    reference = np.asarray(source.model.predict(validation, batch_size=32, verbose=0)).argmax(1)
    held_out_reference = np.asarray(source.model.predict(held_out, batch_size=32, verbose=0)).argmax(1)
    if not (work / "int8.onnx").is_file():
        model, _ = equalize_separable(source.model, iter([calibration]))
        model.export(str(work / "float32.onnx"), format="onnx", verbose=False)
        prepared = _prepare(work / "float32.onnx", work)
        _quantize_prepared(prepared, work / "int8.onnx",
                           lambda: (calibration[i:i + 32] for i in range(0, len(calibration), 32)))
    arrays = {"correction": correction, "validation": validation, "truth": truth, "reference": reference,
              "held_out": held_out, "held_out_truth": held_out_truth, "held_out_reference": held_out_reference}
    np.savez(cached, **arrays)
    return arrays


class Layer:
    """One quantized Conv/Gemm: its int32 bias, the bias's scale, and the tensors compared."""

    def __init__(self, graph, node, producers: dict, readers: dict):
        from onnx import numpy_helper

        self.name = node.name
        inits = {init.name: init for init in graph.initializer}
        quantize = readers[node.output[0]][0]
        if quantize.op_type != "QuantizeLinear":
            raise ValueError(f"{node.name}: output read by {quantize.op_type}, not QuantizeLinear")
        self.float_tensor = node.output[0]  # same name in the float32 model
        self.int8_tensor = quantize.output[0]
        self.out_scale = float(numpy_helper.to_array(inits[quantize.input[1]]))
        self.out_zero = float(numpy_helper.to_array(inits[quantize.input[2]]))
        self.depthwise = any(a.name == "group" and a.i > 1 for a in node.attribute)
        bias_dq = producers[node.input[2]]
        self.bias = inits[bias_dq.input[0]]
        self.bias_scale = numpy_helper.to_array(inits[bias_dq.input[1]]).astype(np.float64)

    def subtract(self, error: np.ndarray) -> np.ndarray:
        """Subtract `error` (per output channel, float units) from the bias; return the int32 steps moved."""
        from onnx import numpy_helper

        steps = np.rint(error / self.bias_scale).astype(np.int64)
        value = numpy_helper.to_array(self.bias).astype(np.int64) - steps
        self.bias.CopyFrom(numpy_helper.from_array(value.astype(np.int32), self.bias.name))
        return steps


def add_bias(graph, node, producers: dict):
    """Give `node` a zero int32 bias; return its DequantizeLinear (scale: input scale x weight scale per channel)."""
    from onnx import helper, numpy_helper

    inits = {init.name: init for init in graph.initializer}
    input_scale = numpy_helper.to_array(inits[producers[node.input[0]].input[1]])
    weight_scale = numpy_helper.to_array(inits[producers[node.input[1]].input[1]])
    scale = (input_scale * weight_scale).astype(np.float32)
    stem = f"{node.name}_bias_correction"
    graph.initializer.extend([
        numpy_helper.from_array(np.zeros(scale.shape, np.int32), stem + "_quantized"),
        numpy_helper.from_array(scale, stem + "_scale"),
        numpy_helper.from_array(np.zeros(scale.shape, np.int32), stem + "_zero_point")])
    node.input.append(stem + "_output")
    return helper.make_node("DequantizeLinear", [stem + "_quantized", stem + "_scale", stem + "_zero_point"],
                            [stem + "_output"], name=stem + "_DequantizeLinear", axis=0)


def layers_of(model) -> list[Layer]:
    """The quantized Conv/Gemm nodes of `model` in graph order (adds the missing biases to the graph)."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    ordered = []
    for node in graph.node:
        if node.op_type in WEIGHTED and len(node.input) < 3:
            ordered.append(add_bias(graph, node, producers))
        ordered.append(node)
    ordered = [_copy(node) for node in ordered]  # the graph's own nodes go with the del below
    del graph.node[:]
    graph.node.extend(ordered)
    producers = {out: node for node in graph.node for out in node.output}
    readers: dict = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return [Layer(graph, node, producers, readers) for node in graph.node if node.op_type in WEIGHTED]


def _copy(node):
    from onnx import NodeProto

    copy = NodeProto()
    copy.CopyFrom(node)
    return copy


def session(model, outputs: list[tuple[str, int]] = ()):
    """An onnxruntime session of `model` (default optimizations) with extra graph outputs (name, elem type)."""
    import onnx
    import onnxruntime as ort

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.extend(onnx.helper.make_tensor_value_info(name, kind, None) for name, kind in outputs)
    return ort.InferenceSession(copy.SerializeToString(), providers=["CPUExecutionProvider"])


def channel_means(sess, images: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Per-channel (axis 1) mean of each named output over `images`."""
    input_name = sess.get_inputs()[0].name
    sums: dict = {}
    for start in range(0, len(images), BATCH):
        values = sess.run(names, {input_name: images[start:start + BATCH]})
        for name, value in zip(names, values):
            axes = (0,) + tuple(range(2, value.ndim))
            sums[name] = sums.get(name, 0) + value.astype(np.float64).mean(axis=axes) * len(value)
    return {name: total / len(images) for name, total in sums.items()}


def top1(sess, images: np.ndarray) -> np.ndarray:
    """Top-1 class of every image."""
    input_name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {input_name: images[i:i + BATCH]})[0] for i in
                           range(0, len(images), BATCH)]).argmax(1)


def int8_errors(model, layers: list[Layer], images: np.ndarray, float_means: dict) -> dict[str, np.ndarray]:
    """Mean per channel of (int8 output, dequantized) - (float32 output) of every layer."""
    import onnx

    sess = session(model, [(layer.int8_tensor, onnx.TensorProto.UINT8) for layer in layers])
    means = channel_means(sess, images, [layer.int8_tensor for layer in layers])
    return {layer.name: (means[layer.int8_tensor] - layer.out_zero) * layer.out_scale - float_means[layer.float_tensor]
            for layer in layers}


def correct(model, layers: list[Layer], images: np.ndarray, float_means: dict, mode: str, passes: int,
            only: str = "all") -> list[dict]:
    """Subtract each layer's measured mean error from its bias; return what moved, per round."""
    log = []
    if only == "depthwise":
        layers = [layer for layer in layers if layer.depthwise]
    rounds = [[layer] for layer in layers] if mode == "sequential" else [layers] * passes
    for group in rounds:
        errors = int8_errors(model, group, images, float_means)
        for layer in group:
            steps = layer.subtract(errors[layer.name])
            log.append({"layer": layer.name, "depthwise": layer.depthwise,
                        "mean_abs_error": float(np.abs(errors[layer.name]).mean()),
                        "mean_abs_error_in_output_steps": float(np.abs(errors[layer.name]).mean() / layer.out_scale),
                        "bias_steps_moved": int(np.abs(steps).sum())})
            print(json.dumps(log[-1]), file=sys.stderr, flush=True)
    return log


def median_ms_in_turn(calls: dict[str, Callable[[], object]], rounds: int = 15, runs: int = 20) -> dict[str, float]:
    """Median ms of each call, the calls timed in turn (so load changes hit every one alike)."""
    times: dict = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(runs):
                begin = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - begin)
    return {name: float(np.median(values) * 1000) for name, values in times.items()}


def latency(models: dict, image: np.ndarray) -> dict[str, float]:
    """Median ms of one image per model, the models timed in turn."""
    calls = {}
    for name, model in models.items():
        sess = session(model)
        feed = {sess.get_inputs()[0].name: image[None]}
        calls[name] = functools.partial(sess.run, None, feed)
    return median_ms_in_turn(calls)


def study(checkpoint: Path, work: Path, mode: str, passes: int, correction_images: str, only: str,
          seed: int = 0, count: int = CALIBRATION_IMAGES) -> dict:
    """Plain and bias-corrected int8 ONNX of `checkpoint`: agreement, accuracy, latency, and what moved."""
    import onnx

    started, before = time.time(), machine()
    data = build(checkpoint, work, correction_images, seed, count)
    plain = onnx.load(str(work / "int8.onnx"))
    corrected = onnx.load(str(work / "int8.onnx"))
    layers = layers_of(corrected)
    zero_biased = onnx.ModelProto()
    zero_biased.CopyFrom(corrected)  # biases added, nothing corrected yet: must give the plain answers
    float_model = onnx.load(str(work / "prepared.onnx"))
    float_means = channel_means(session(float_model, [(layer.float_tensor, onnx.TensorProto.FLOAT)
                                                      for layer in layers]),
                                data["correction"], [layer.float_tensor for layer in layers])
    log = correct(corrected, layers, data["correction"], float_means, mode, passes, only)
    residual = int8_errors(corrected, layers, data["correction"], float_means)
    reference, truth, validation = data["reference"], data["truth"], data["validation"]
    rows, answers_of = {}, {}
    for name, model in (("plain", plain), ("biases added, uncorrected", zero_biased), ("corrected", corrected)):
        sess = session(model)
        answers, held = top1(sess, validation), top1(sess, data["held_out"])
        answers_of[name] = np.concatenate([answers, held])
        rows[name] = {"agreement": float((answers == reference).mean()), "accuracy": float((answers == truth).mean()),
                      "held_out_training_agreement": float((held == data["held_out_reference"]).mean()),
                      "held_out_training_accuracy": float((held == data["held_out_truth"]).mean())}
    both = np.concatenate([reference, data["held_out_reference"]])
    agree_plain, agree_corrected = answers_of["plain"] == both, answers_of["corrected"] == both
    # paired: the photos (validation and held-out training) the correction made agree, and made disagree
    rows["fixed"] = int((agree_corrected & ~agree_plain).sum())
    rows["broken"] = int((agree_plain & ~agree_corrected).sum())
    # the measurement reads every layer's int8 output: onnxruntime must still fuse (and answer) as without
    exposed = top1(session(plain, [(layer.int8_tensor, onnx.TensorProto.UINT8) for layer in layers]), validation)
    onnx.save(corrected, str(work / f"int8-corrected-{mode}.onnx"))
    result = {"checkpoint": checkpoint.name, "mode": mode, "passes": passes if mode == "passes" else None,
              "layers_corrected": only,
              "correction_images": f"{len(data['correction'])} training images ({correction_images})",
              "seed": seed if correction_images == "other" else None,
              "validation_images": len(validation), "keras_accuracy": float((reference == truth).mean()),
              "held_out_training_images": len(data["held_out"]),
              "keras_held_out_training_accuracy": float((data["held_out_reference"] == data["held_out_truth"]).mean()),
              "results": rows, "latency_ms": latency({"plain": plain, "corrected": corrected}, validation[0]),
              "exposing_a_tensor_changes_answers": bool((exposed != top1(session(plain), validation)).any()),
              "residual_mean_abs_error_in_output_steps": float(np.mean(
                  [np.abs(residual[layer.name]).mean() / layer.out_scale for layer in layers])),
              "layers": log, "machine": before, "load_after": os.getloadavg(),
              "seconds": round(time.time() - started, 1)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--mode", choices=("sequential", "passes"), default="sequential")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--correction-images", choices=("calibration", "other"), default="calibration",
                        help="convert's 500 calibration images, or 500 other training images")
    parser.add_argument("--seed", type=int, default=0, help="which other training images (with 'other')")
    parser.add_argument("--count", type=int, default=CALIBRATION_IMAGES,
                        help="how many other training images (with 'other'; at most 1,568 on clothing-small)")
    parser.add_argument("--only", choices=("all", "depthwise"), default="all",
                        help="correct every Conv/Gemm, or the depthwise convolutions only")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgelite-bias-study"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("bias_correction.json"))
    args = parser.parse_args()
    result = study(args.checkpoint, args.work / args.checkpoint.stem, args.mode, args.passes, args.correction_images,
                   args.only, args.seed, args.count)
    runs = json.loads(args.out.read_text()) if args.out.is_file() else []
    runs.append(result)
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("layers", "machine")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.exit(main())
