"""Issue 18: whole-model 16x8 TFLite (int16 activations, int8 weights) against edgelite's int8 artifact.

    python benchmarks/a16w8_study.py CHECKPOINT INT8_TFLITE

Converts CHECKPOINT with TFLite's 16x8 mode (calibrated on 500 training images,
every fifth one), then runs it and INT8_TFLITE (edgelite's int8 artifact of the
same checkpoint) on all clothing-small validation images: top-1 agreement with
the Keras model, accuracy, and the median single-image latency (2 threads,
the bare LiteRT interpreter, 90 runs). Prints JSON with the load average.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small"))


def run(path: Path, images: np.ndarray) -> tuple[np.ndarray, float]:
    """Top-1 class of every image, and the median ms of one image over 90 runs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    given, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def one(image: np.ndarray) -> np.ndarray:
        value = image[None]
        if given["dtype"] != np.float32:  # int8 artifacts take uint8 pixels through their input scale
            scale, zero = given["quantization"]
            limits = np.iinfo(given["dtype"])
            value = np.clip(np.rint(value / scale + zero), limits.min, limits.max).astype(given["dtype"])
        interpreter.set_tensor(given["index"], value)
        interpreter.invoke()
        return interpreter.get_tensor(output["index"])[0]

    top = np.array([one(image).astype(np.float32).argmax() for image in images])
    times = []
    for _ in range(3):
        for image in images[:30]:
            begin = time.perf_counter()
            one(image)
            times.append(time.perf_counter() - begin)
    return top, float(np.median(times) * 1000)


def main() -> None:
    from edgelite.convert.source import load_checkpoint
    from edgelite.lazy import import_keras
    from edgelite.runtime.folder import pixel_batches, read_folder

    checkpoint, int8 = Path(sys.argv[1]), Path(sys.argv[2])
    tf, _ = import_keras("convert")
    source = load_checkpoint(checkpoint, None, None, None, None, label_folders=(DATA / "train",))
    meta = source.metadata

    def pixels(folder: Path, limit=None):
        items = read_folder(folder, limit=limit)
        batches = pixel_batches([i.path for i in items], meta.input_height, meta.input_width, meta.interpolation,
                                decode=meta.decode)
        return np.concatenate(list(batches)), items

    calibration, _ = pixels(DATA / "train", 500)
    validation, items = pixels(DATA / "validation")
    truth = np.array([meta.labels.index(i.label) for i in items])
    reference = np.asarray(source.model.predict(validation, batch_size=32, verbose=0)).argmax(1)
    converter = tf.lite.TFLiteConverter.from_keras_model(source.model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(0, len(calibration), 5))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    result: dict = {"checkpoint": checkpoint.name, "images": len(validation),
                    "reference_accuracy": float((reference == truth).mean()), "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="edgelite-a16w8-") as folder:
        a16w8 = Path(folder) / "a16w8.tflite"
        a16w8.write_bytes(converter.convert())
        for name, path in (("int8 (edgelite)", int8), ("16x8 (TFLite)", a16w8)):
            top, ms = run(path, validation)
            result[name] = {"agreement": float((top == reference).mean()), "accuracy": float((top == truth).mean()),
                            "median_ms": ms, "size_bytes": path.stat().st_size}
    result["load_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
