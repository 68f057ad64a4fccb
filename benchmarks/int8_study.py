"""Stage 3 of the suite: why is TFLite int8 not faster than float32 on this CPU?

Times TFLite variants of one model with LiteRT's XNNPACK delegate on (the
default op resolver, AUTO) and off (BUILTIN_WITHOUT_DEFAULT_DELEGATES: the
built-in ruy/optimized kernels), at each thread count:
float32, dynamic range, int8 per-channel with uint8 I/O (edgelite's default),
int8 per-channel with int8 I/O, and int8 per-tensor. The extra int8 variants
are converted here from the same checkpoint with a small calibration set.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

RESOLVERS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}
CALIBRATION_IMAGES = 40


def convert_variants(checkpoint: Path, calibration: Path, out: Path, log) -> dict[str, Path]:
    """int8 with int8 I/O and int8 per-tensor, beside the suite's own artifacts."""
    wanted = {"int8 per-channel, int8 I/O": out / "int8_io_int8.tflite",
              "int8 per-tensor, uint8 I/O": out / "int8_per_tensor.tflite"}
    if all(path.is_file() for path in wanted.values()):
        return wanted
    from edgelite.convert.source import load_checkpoint
    from edgelite.lazy import import_keras
    from edgelite.runtime.folder import pixel_batches, read_folder

    tf, _ = import_keras("convert")
    source = load_checkpoint(checkpoint)
    meta = source.metadata
    paths = [item.path for item in read_folder(calibration, limit=CALIBRATION_IMAGES)]
    images = np.concatenate(list(pixel_batches(paths, meta.input_height, meta.input_width, meta.interpolation)))
    out.mkdir(parents=True, exist_ok=True)
    for (name, path), (io_type, per_tensor) in zip(wanted.items(), ((tf.int8, False), (tf.uint8, True))):
        log(f"converting {name}")
        converter = tf.lite.TFLiteConverter.from_keras_model(source.model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = io_type
        # A private switch, but the only one: per-tensor weight scales for every layer.
        converter._experimental_disable_per_channel = per_tensor
        path.write_bytes(converter.convert())
    return wanted


def time_tflite(path: Path, threads: int, resolver: str, seconds: float, warmup: int = 2) -> dict:
    """p50/mean latency of one LiteRT interpreter on a random input of the model's dtype."""
    from ai_edge_litert import interpreter as litert

    kind = getattr(litert.OpResolverType, resolver)
    interpreter = litert.Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.issubdtype(detail["dtype"], np.integer):
        info = np.iinfo(detail["dtype"])
        batch = rng.integers(info.min, info.max, detail["shape"], dtype=detail["dtype"])
    else:
        batch = rng.uniform(0, 255, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], batch)
    for _ in range(warmup):
        interpreter.invoke()
    samples = []
    started = time.perf_counter()
    while len(samples) < 3 or time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        interpreter.invoke()
        samples.append((time.perf_counter() - begin) * 1000)
    ops = interpreter._get_ops_details()
    return {"p50_ms": statistics.median(samples), "mean_ms": statistics.fmean(samples), "runs": len(samples),
            # XNNPACK partitions: 1 when it took the whole graph as one piece, 0 when off.
            "delegate_partitions": sum(op.get("op_name") == "DELEGATE" for op in ops)}



def study(artifacts: dict[str, Path], threads: tuple[int, ...], seconds: float, log) -> list[dict]:
    """Every (variant, XNNPACK on/off, threads) timing, in one process, one after the other."""
    rows = []
    for variant, path in artifacts.items():
        for delegate, resolver in RESOLVERS.items():
            for count in threads:
                log(f"int8 study: {variant}, {delegate}, {count} thread(s)")
                try:
                    timing = time_tflite(path, count, resolver, seconds)
                except Exception as exc:  # a variant the interpreter refuses is a finding too
                    timing = {"error": f"{type(exc).__name__}: {str(exc).strip()[:200]}"}
                rows.append({"variant": variant, "kernels": delegate, "threads": count, **timing})
    return rows
