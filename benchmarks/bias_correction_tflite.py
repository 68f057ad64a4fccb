"""Issue 18: empirical bias correction of edgelite's int8 TFLite model, measured (the ONNX study's twin).

    python benchmarks/bias_correction_tflite.py CHECKPOINT [--correction-images calibration|other] [--seed N]

The method and the images are those of benchmarks/bias_correction_study.py
(Nagel et al. 2019, empirical form), on TFLite: the int8 model is built as
`convert --min-agreement` builds its plain variant (edgelite's
TfliteInt8Variants: equalized, calibrated on convert's 500 training images,
LiteRT's quantizer, the ADD+ReLU rewrite). Per CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED in graph order, the mean per output channel of its int8 output
(read with experimental_preserve_all_tensors on LiteRT's built-in kernels)
minus the same tensor of the calibrated float model (same tensor names) is
subtracted from its int32 bias (scale: input scale x weight scale), one layer
per run over the correction images. Reported with XNNPACK (how edgelite runs
the artifact), 2 threads, on all 341 validation images and on the 1,000
held-out training images of the ONNX study.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bias_correction_study import CALIBRATION_IMAGES, DATA, build, machine, median_ms_in_turn  # noqa: E402

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def plain_int8(checkpoint: Path, calibration: np.ndarray, work: Path) -> tuple[bytes, bytes]:
    """The plain int8 flatbuffer (as convert's --min-agreement variants build it) and the calibrated float one."""
    from edgelite.convert import ConvertOptions
    from edgelite.convert.source import load_checkpoint
    from edgelite.convert.tflite import TfliteInt8Variants

    source = load_checkpoint(checkpoint, None, None, None, None, label_folders=(DATA / "train",))
    options = ConvertOptions(precisions=("int8",), calibration=DATA / "train")
    variants = TfliteInt8Variants(source, lambda: (calibration[i:i + 32] for i in range(0, len(calibration), 32)),
                                  options, work)
    path = variants.build((), (), work / "int8.tflite")
    return path.read_bytes(), bytes(variants._calibrated)


class Interpreter:
    """One LiteRT interpreter over a flatbuffer: quantizes the input as the artifact asks, runs one image."""

    def __init__(self, content: bytes, inspect: bool = False):
        from ai_edge_litert.interpreter import Interpreter as Lite, OpResolverType

        kind = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if inspect else OpResolverType.AUTO
        self.lite = Lite(model_content=content, num_threads=2, experimental_op_resolver_type=kind,
                         experimental_preserve_all_tensors=inspect)
        self.lite.allocate_tensors()
        self.given, self.output = self.lite.get_input_details()[0], self.lite.get_output_details()[0]
        self.tensors = {d["name"]: d for d in self.lite.get_tensor_details()}

    def run(self, image: np.ndarray) -> np.ndarray:
        """The output of one (H, W, 3) raw-pixel image."""
        value = image[None]
        if self.given["dtype"] != np.float32:
            scale, zero = self.given["quantization"]
            limits = np.iinfo(self.given["dtype"])
            value = np.clip(np.rint(value / scale + zero), limits.min, limits.max).astype(self.given["dtype"])
        self.lite.set_tensor(self.given["index"], value)
        self.lite.invoke()
        return self.lite.get_tensor(self.output["index"])[0]

    def channel_means(self, images: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Per-channel (last axis) mean of each named tensor, dequantized, over `images`."""
        sums = {name: 0.0 for name in names}
        for image in images:
            self.run(image)
            for name in names:
                detail = self.tensors[name]
                value = self.lite.get_tensor(detail["index"]).astype(np.float64)
                if detail["dtype"] != np.float32:
                    scale, zero = detail["quantization"]
                    value = (value - zero) * scale
                sums[name] += value.reshape(-1, value.shape[-1]).mean(0)
        return {name: total / len(images) for name, total in sums.items()}


def weighted_ops(content: bytes) -> list[dict]:
    """Conv/depthwise/dense ops in graph order: output tensor name, bias buffer, bias scale."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)
    ops, buffers = [], set()
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())) not in WEIGHTED:
            continue
        output, bias = graph.Tensors(op.Outputs(0)), graph.Tensors(op.Inputs(2))
        if bias.Buffer() in buffers:
            raise ValueError(f"bias buffer {bias.Buffer()} shared between ops")
        buffers.add(bias.Buffer())
        ops.append({"tensor": output.Name().decode(), "buffer": bias.Buffer(),
                    "bias_scale": bias.Quantization().ScaleAsNumpy().astype(np.float64),
                    "depthwise": names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())] == "DEPTHWISE_CONV_2D"})
    return ops


def own_bias_buffers(content: bytes) -> bytes:
    """The flatbuffer with every conv/dense bias in a buffer of its own (the converter shares equal ones)."""
    import copy

    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    seen = set()
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        if names.get(max(code.builtinCode, code.deprecatedBuiltinCode)) not in WEIGHTED:
            continue
        tensor = model.subgraphs[0].tensors[op.inputs[2]]
        if tensor.buffer in seen:
            model.buffers.append(copy.deepcopy(model.buffers[tensor.buffer]))
            tensor.buffer = len(model.buffers) - 1
        seen.add(tensor.buffer)
    builder = flatbuffers.Builder(len(content) + 65536)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def subtract(content: bytearray, buffer: int, steps: np.ndarray) -> None:
    """Subtract `steps` from the int32 bias stored in `buffer`, in place in the flatbuffer bytes."""
    from tensorflow.lite.python import schema_py_generated as schema

    data = schema.Model.GetRootAs(content, 0).Buffers(buffer).DataAsNumpy()  # a view into `content`
    bias = data.view(np.int32)
    bias[:] = (bias.astype(np.int64) - steps).astype(np.int32)


def correct(content: bytearray, float_means: dict, ops: list[dict], images: np.ndarray) -> list[dict]:
    """One layer per run over `images`: subtract its measured mean error from its bias."""
    log = []
    for op in ops:
        means = Interpreter(bytes(content), inspect=True).channel_means(images, [op["tensor"]])[op["tensor"]]
        error = means - float_means[op["tensor"]]
        steps = np.rint(error / op["bias_scale"]).astype(np.int64)
        subtract(content, op["buffer"], steps)
        log.append({"tensor": op["tensor"][:80], "depthwise": op["depthwise"],
                    "mean_abs_error": float(np.abs(error).mean()), "bias_steps_moved": int(np.abs(steps).sum())})
        print(json.dumps(log[-1]), file=sys.stderr, flush=True)
    return log


def latency(contents: dict, image: np.ndarray) -> dict[str, float]:
    """Median ms of one image per model (XNNPACK, 2 threads), the models timed in turn."""
    return median_ms_in_turn({name: functools.partial(Interpreter(content).run, image)
                              for name, content in contents.items()})


def study(checkpoint: Path, work: Path, correction_images: str, seed: int) -> dict:
    """Plain and bias-corrected int8 TFLite of `checkpoint`: agreement, accuracy, latency, and what moved."""
    started, before = time.time(), machine()
    data = build(checkpoint, work, correction_images, seed)
    calibration = build(checkpoint, work, "calibration")["correction"]
    plain, calibrated = plain_int8(checkpoint, calibration, work)
    plain = own_bias_buffers(plain)
    ops = weighted_ops(plain)
    float_interpreter = Interpreter(calibrated, inspect=True)
    missing = [op["tensor"] for op in ops if op["tensor"] not in float_interpreter.tensors]
    if missing:
        raise ValueError(f"int8 tensors not in the float model: {missing[:3]}")
    float_means = float_interpreter.channel_means(data["correction"], [op["tensor"] for op in ops])
    corrected = bytearray(plain)
    log = correct(corrected, float_means, ops, data["correction"])
    (work / "int8-corrected.tflite").write_bytes(corrected)
    both = np.concatenate([data["reference"], data["held_out_reference"]])
    rows, agrees = {}, {}
    for name, content in (("plain", plain), ("corrected", bytes(corrected))):
        interpreter = Interpreter(content)
        answers = np.array([interpreter.run(image).astype(np.float32).argmax() for image in data["validation"]])
        held = np.array([interpreter.run(image).astype(np.float32).argmax() for image in data["held_out"]])
        agrees[name] = np.concatenate([answers, held]) == both
        rows[name] = {"agreement": float((answers == data["reference"]).mean()),
                      "accuracy": float((answers == data["truth"]).mean()),
                      "held_out_training_agreement": float((held == data["held_out_reference"]).mean()),
                      "held_out_training_accuracy": float((held == data["held_out_truth"]).mean())}
    rows["fixed"] = int((agrees["corrected"] & ~agrees["plain"]).sum())
    rows["broken"] = int((agrees["plain"] & ~agrees["corrected"]).sum())
    return {"checkpoint": checkpoint.name, "format": "tflite",
            "correction_images": f"{len(data['correction'])} training images ({correction_images})",
            "seed": seed if correction_images == "other" else None, "validation_images": len(data["validation"]),
            "held_out_training_images": len(data["held_out"]), "results": rows,
            "latency_ms": latency({"plain": plain, "corrected": bytes(corrected)}, data["validation"][0]),
            "layers": log, "machine": before, "load_after": os.getloadavg(), "seconds": round(time.time() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--correction-images", choices=("calibration", "other"), default="calibration",
                        help=f"convert's {CALIBRATION_IMAGES} calibration images, or as many other training images")
    parser.add_argument("--seed", type=int, default=0, help="which other training images (with 'other')")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgelite-bias-study"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("bias_correction.json"))
    args = parser.parse_args()
    result = study(args.checkpoint, args.work / args.checkpoint.stem, args.correction_images, args.seed)
    runs = json.loads(args.out.read_text()) if args.out.is_file() else []
    runs.append(result)
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("layers", "machine")}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
