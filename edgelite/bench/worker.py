"""One measurement in a fresh process: `python -m edgelite.bench.worker` with a JSON job on stdin.

The job (`edgelite.bench.job.WorkerJob`) names one model file, its kind
("artifact" for a .tflite/.onnx run by `edgelite.runtime`, "keras" for a
checkpoint run by TensorFlow), a thread count and the timing options. The worker prints exactly
one JSON object, the measured row, on stdout and exits 0 even when the model
fails to load or run (the row then carries `error`). Anything native libraries
print goes to stderr, so stdout stays parseable.

Only the standard library is imported before the clock starts, so the cold
start (import, load, first prediction) is the one a device would see.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, Callable, Optional  # noqa: E402

from edgelite.errors import ImageError  # noqa: E402

if TYPE_CHECKING:
    from edgelite.bench.job import WorkerJob

EVAL_BATCH = 32
TIMING_IMAGES = 8
SYNTHETIC_PHOTO = (640, 480)
END_TO_END_IMAGES = 64
FOLDER_BATCH = 8


def main() -> int:
    """Read the job from stdin, measure it, write the row to the real stdout."""
    real_stdout = os.dup(1)
    os.dup2(2, 1)  # native code that prints to stdout must not corrupt the result
    try:
        from edgelite.bench.job import WorkerJob

        job = WorkerJob.from_json(sys.stdin.read())
        row = measure_keras(job) if job.kind == "keras" else measure_artifact(job)
    except Exception as exc:  # a broken model is a result to report, not a crash of the harness
        row = {"error": _one_line(exc)}
    with os.fdopen(real_stdout, "w") as out:
        out.write(json.dumps(row) + "\n")
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def measure_artifact(job: "WorkerJob") -> dict:
    """Load a .tflite/.onnx with edgelite.runtime and measure it."""
    import numpy as np

    import edgelite.runtime as runtime
    from edgelite.bench.measure import current_rss_mb, peak_rss_mb

    imported = time.perf_counter()
    rss_idle = current_rss_mb()
    begin = time.perf_counter()
    model = runtime.load(job.path, threads=job.threads)
    loaded = time.perf_counter()
    row: dict[str, Any] = {
        "format": model.format, "backend": model.backend.kind, "backend_version": model.backend.version,
        "precision": model.metadata.precision if model.metadata else None,
        "float_layers": list(model.metadata.float_layers) if model.metadata else [],
        "input": {"shape": list(model.input.shape), "dtype": model.input.dtype.name,
                  "height": model.height, "width": model.width},
        "labels": list(model.labels), "assumptions": list(model.assumptions),
        "import_s": imported - STARTED, "load_s": loaded - begin, "rss_idle_mb": rss_idle,
    }

    def prepare(path: Path) -> np.ndarray:
        return model.prepare(path).pixels

    def scores(pixels: np.ndarray) -> np.ndarray:
        return model.class_scores(model.run(pixels))

    def folder(paths: list[Path]) -> int:
        return sum(1 for result in model.predict_iter(paths, batch_size=FOLDER_BATCH) if result.ok)

    return _measure(job, row, prepare, scores, model.height, model.width, peak_rss_mb, folder)


def measure_keras(job: "WorkerJob") -> dict:
    """Load a Keras checkpoint with TensorFlow (the baseline) and measure it the same way."""
    import numpy as np

    from edgelite.bench.measure import current_rss_mb, peak_rss_mb
    from edgelite.lazy import import_keras

    tf, keras = import_keras("convert")
    tf.config.threading.set_intra_op_parallelism_threads(job.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from edgelite.convert.source import load_classifier

    imported = time.perf_counter()
    rss_idle = current_rss_mb()
    begin = time.perf_counter()
    # Labels only name the classes in the rows; accuracy needs the real ones, which training stores.
    model = load_classifier(Path(job.path), name_unlabelled=True)
    loaded = time.perf_counter()
    meta = model.metadata
    row: dict[str, Any] = {
        "format": "keras", "backend": "tensorflow", "backend_version": tf.__version__, "precision": "float32",
        "float_layers": [], "input": {"shape": [-1, meta.input_height, meta.input_width, 3], "dtype": "float32",
                  "height": meta.input_height, "width": meta.input_width},
        "labels": list(model.labels), "assumptions": list(model.source.notes),
        "import_s": imported - STARTED, "load_s": loaded - begin, "rss_idle_mb": rss_idle,
    }

    def prepare(path: Path) -> np.ndarray:
        return model.prepare(path).pixels

    def scores(pixels: np.ndarray) -> np.ndarray:
        return model.class_scores(model.run(pixels))

    return _measure(job, row, prepare, scores, meta.input_height, meta.input_width, peak_rss_mb)


def _measure(job: "WorkerJob", row: dict, prepare: Callable, scores: Callable, height: int, width: int,
             peak_rss_mb: Callable[[], float], folder: Optional[Callable[[list[Path]], int]] = None) -> dict:
    """First prediction, timed runs, preprocessing and (with data) predictions, for either kind."""
    import numpy as np

    from edgelite.bench.measure import latency_stats, time_calls

    batch = job.batch
    items = _data_items(job)
    read = _Reader(prepare)
    begin = time.perf_counter()
    first_pixels = _first_readable(read, items, job)[None] if items else _random_batch(np, 1, height, width)
    prepared = time.perf_counter()
    scores(first_pixels)
    row["first_inference_s"] = time.perf_counter() - prepared
    # Listing the data folder and measuring memory are the harness's work, not the model's: left out.
    row["cold_start_s"] = row["import_s"] + row["load_s"] + (prepared - begin if items else 0.0) \
        + row["first_inference_s"]

    if items:
        pixels = np.stack(list(read.readable([path for path, _ in items], max(TIMING_IMAGES, batch))))
        inputs = [np.take(pixels, np.arange(i, i + batch) % len(pixels), axis=0) for i in range(len(pixels))]
        row["input"]["source"] = "data"
    else:
        inputs = [_random_batch(np, batch, height, width) for _ in range(TIMING_IMAGES)]
        row["input"]["source"] = "random"
    samples = time_calls(scores, inputs, job.runs, job.seconds, job.min_runs, job.warmup)
    row["runs"] = len(samples)
    row["latency_ms"] = latency_stats(samples)
    row["samples_ms"] = [s * 1000.0 for s in samples]
    row["throughput_ips"] = batch * len(samples) / sum(samples)

    # Read before the evaluation, whose batches of EVAL_BATCH images would inflate the peak.
    row["peak_rss_mb"] = peak_rss_mb()
    row["rss_growth_mb"] = row["peak_rss_mb"] - row["rss_idle_mb"]
    if items and job.evaluate:
        row.update(_evaluate(np, items, read, scores, row["labels"]))
    else:
        row["preprocess_ms"], row["preprocess_source"] = _preprocess_time(np, items, read, height, width)
    if items and job.end_to_end:
        row.update(_end_to_end(np, [path for path, _ in items[:END_TO_END_IMAGES]], read, scores, folder))
    row["unreadable_images"] = sorted(read.failed.values())
    row["loadavg"] = list(os.getloadavg())
    return row


def _end_to_end(np, paths: list[Path], read: "_Reader", scores: Callable,
                folder: Optional[Callable[[list[Path]], int]]) -> dict:
    """Decode + resize + inference of each readable file as it is, one at a time; then the folder rate."""
    from PIL import Image

    from edgelite.bench.measure import latency_stats

    times, readable = [], []
    for path in paths:
        begin = time.perf_counter()
        pixels = read(path)
        if pixels is None:
            continue
        scores(pixels[None])
        times.append(time.perf_counter() - begin)
        readable.append(path)
    if not readable:
        raise ImageError(f"none of the {len(paths)} data images for --end-to-end can be read")
    megapixels = []
    for path in readable:
        with Image.open(path) as image:
            megapixels.append(image.size[0] * image.size[1] / 1e6)
    paths = readable
    result = {"end_to_end_ms": latency_stats(times), "end_to_end_images": len(paths),
              "source_megapixels": {"min": min(megapixels), "p50": float(np.median(megapixels)),
                                    "max": max(megapixels)},
              "folder_ips": None, "folder_batch": None}
    if folder is not None:
        begin = time.perf_counter()
        count = folder(paths)
        result.update(folder_ips=count / (time.perf_counter() - begin), folder_batch=FOLDER_BATCH)
    return result


class _Reader:
    """The model's `prepare` for data files, skipping the unreadable ones: each is tried once and remembered.

    Attributes:
        prepare: the model's own preprocessing (path or image -> pixels).
        failed: path -> why it could not be read.
    """

    def __init__(self, prepare: Callable):
        self.prepare = prepare
        self.failed: dict[Path, str] = {}

    def __call__(self, path: Path):
        """The pixels of `path`, or None when it cannot be read."""
        if path in self.failed:
            return None
        try:
            return self.prepare(path)
        except ImageError as exc:
            self.failed[path] = str(exc)
            return None

    def readable(self, paths: list[Path], limit: int):
        """The pixels of the first `limit` readable files among `paths`."""
        found = 0
        for path in paths:
            if found == limit:
                return
            pixels = self(path)
            if pixels is not None:
                found += 1
                yield pixels


def _first_readable(read: _Reader, items, job: "WorkerJob"):
    pixels = next(read.readable([path for path, _ in items], 1), None)
    if pixels is None:
        raise ImageError(f"none of the {len(items)} images in {job.data} can be read")
    return pixels


def _random_batch(np, batch: int, height: int, width: int):
    # Raw 0-255 pixels: the runtime scales and quantizes them to the model's input dtype.
    return np.random.default_rng(0).uniform(0, 255, (batch, height, width, 3)).astype(np.float32)


def _data_items(job: "WorkerJob") -> list[tuple[Path, Optional[str]]]:
    if not job.data:
        return []
    from edgelite.runtime.folder import read_folder

    return [(item.path, item.label) for item in read_folder(Path(job.data), job.limit)]


def _evaluate(np, items, read: "_Reader", scores: Callable, labels: list[str]) -> dict:
    """Predict every readable image; time the preprocessing of each apart from inference."""
    from edgelite.bench.measure import latency_stats
    from edgelite.runtime.scores import accuracy, top1

    lookup = {name: i for i, name in enumerate(labels)}
    preprocess_times, predicted, kept = [], [], []
    for start in range(0, len(items), EVAL_BATCH):
        chunk = []
        for path, label in items[start:start + EVAL_BATCH]:
            begin = time.perf_counter()
            pixels = read(path)
            if pixels is None:
                continue
            preprocess_times.append(time.perf_counter() - begin)
            chunk.append(pixels)
            kept.append((path, label))
        if chunk:
            predicted.extend(int(i) for i in top1(scores(np.stack(chunk))))
    items = kept
    truth = [lookup.get(label, -1) if label else -1 for _, label in items]
    return {"preprocess_ms": latency_stats(preprocess_times), "preprocess_source": "data",
            "images": [str(path) for path, _ in items], "predicted": predicted,
            "accuracy": accuracy(predicted, truth), "eval_images": len(items),
            "labelled_images": sum(t >= 0 for t in truth)}


def _preprocess_time(np, items, read: "_Reader", height: int, width: int):
    """Preprocessing time on a few data images, or on a synthetic photo when there is no data."""
    from edgelite.bench.measure import latency_stats

    if items:
        sources, what = [path for path, _ in items if path not in read.failed][:TIMING_IMAGES], "data"
    else:
        from PIL import Image

        noise = np.random.default_rng(1).integers(0, 256, (SYNTHETIC_PHOTO[1], SYNTHETIC_PHOTO[0], 3), np.uint8)
        encoded = io.BytesIO()
        Image.fromarray(noise).save(encoded, format="JPEG", quality=90)
        sources = [encoded.getvalue()] * TIMING_IMAGES
        what = f"synthetic {SYNTHETIC_PHOTO[0]}x{SYNTHETIC_PHOTO[1]} JPEG"
    times = []
    for source in sources:
        begin = time.perf_counter()
        if isinstance(source, bytes):
            from PIL import Image

            read.prepare(Image.open(io.BytesIO(source)))
        else:
            read(source)
        times.append(time.perf_counter() - begin)
    return latency_stats(times), what


if __name__ == "__main__":
    sys.exit(main())
