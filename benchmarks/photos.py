"""Stage of the suite for real photos: fast vs exact decode, end to end, folders, memory (issue 9).

Makes a 12-megapixel set (clothing-small validation photos upscaled to 4032x3024,
or 3024x4032 for portrait photos, JPEG quality 90) in the work folder, then
measures in one run:
- decode + resize time of a 12 MP JPEG: the v0.1.0 path (decode, uint8 array, back
  to PIL, resize), today's exact mode and the fast mode (reduced DCT scale);
- top-1 agreement between exact and fast decode with the trained scratch CNN, on
  the 12 MP set and on the original photos (where fast decode changes nothing);
- end-to-end latency and folder throughput per artifact (`edgelite bench --end-to-end`);
- the scratch CNN's folder rate through predict_iter against the v0.1.0
  one-image-at-a-time loop, on the original photos;
- peak memory of `edgelite predict` over 50 and 5,000 images.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from edgelite.bench import BenchOptions, run_bench
from edgelite.runtime import load, preprocess
from edgelite.runtime.preprocess import IMAGE_SUFFIXES, _to_rgb

TWELVE_MP = (4032, 3024)
DECODE_SAMPLE = 30
MEMORY_SIZES = (50, 5000)


def make_12mp_set(dataset: Path, work: Path, log: Callable[[str], None]) -> Path:
    """Every validation photo upscaled to 12 MP (bicubic, JPEG q90), class folders kept; reused when present."""
    out = work / "photos-12mp"
    sources = sorted(p for p in (dataset / "validation").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    for done, source in enumerate(sources, 1):
        upscale_to_12mp(source, out / source.relative_to(dataset / "validation"))
        if done % 50 == 0:
            log(f"  12 MP set: {done}/{len(sources)}")
    return out


def upscale_to_12mp(source: Path, target: Path) -> None:
    """`source` upscaled (bicubic) to 4032x3024, or 3024x4032 if portrait, as a JPEG of quality 90 (kept if there)."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    size = TWELVE_MP if rgb.width >= rgb.height else TWELVE_MP[::-1]
    temp = target.with_suffix(".tmp")
    rgb.resize(size, Image.Resampling.BICUBIC).save(temp, "JPEG", quality=90)
    temp.replace(target)


def legacy_preprocess(path: Path, height: int, width: int) -> np.ndarray:
    """edgelite 0.1.0's path: full decode, an 8-bit array, back to a PIL image, resize, float32."""
    with Image.open(path) as image:
        image.load()
        rgb, _ = _to_rgb(ImageOps.exif_transpose(image), path.name)
        pixels = np.asarray(rgb, dtype=np.uint8)
    resized = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def decode_times(files: list[Path], sizes: tuple[int, ...]) -> dict:
    """Median ms per image of each decode path, interleaved file by file so they share the machine's noise."""
    out = {}
    for size in sizes:
        times: dict[str, list[float]] = {"v0.1.0": [], "exact": [], "fast": []}
        calls = {"v0.1.0": lambda p: legacy_preprocess(p, size, size),
                 "exact": lambda p: preprocess(p, size, size, decode="exact"),
                 "fast": lambda p: preprocess(p, size, size, decode="fast")}
        for path in files:
            for name, call in calls.items():
                begin = time.perf_counter()
                call(path)
                times[name].append((time.perf_counter() - begin) * 1000)
        medians = {name: statistics.median(values) for name, values in times.items()}
        out[str(size)] = {"images": len(files), "median_ms": medians,
                          "exact_over_fast": medians["exact"] / medians["fast"],
                          "v010_over_fast": medians["v0.1.0"] / medians["fast"]}
    return out


def decode_agreement(artifact: Path, files: list[Path]) -> dict:
    """Top-1 agreement and largest score difference between exact and fast decode, and identical inputs."""
    exact, fast = load(artifact, threads=2, decode="exact"), load(artifact, threads=2, decode="fast")
    same_top1 = identical = 0
    max_diff = 0.0
    for path in files:
        a, b = exact.prepare(path).pixels, fast.prepare(path).pixels
        identical += int(np.array_equal(a, b))
        sa, sb = exact.class_scores(exact.run(a[None]))[0], fast.class_scores(fast.run(b[None]))[0]
        same_top1 += int(sa.argmax() == sb.argmax())
        max_diff = max(max_diff, float(np.abs(sa - sb).max()))
    return {"artifact": artifact.name, "images": len(files), "top1_agreement": same_top1 / len(files),
            "identical_inputs": identical, "max_score_diff": max_diff}


def folder_rates(artifact: Path, files: list[Path], threads: int, repeats: int = 3) -> dict:
    """Images/s of the v0.1.0 loop (one image at a time) and of predict_iter, best of `repeats` each."""
    model = load(artifact, threads=threads)
    height, width = model.height, model.width

    def one_at_a_time() -> None:
        for path in files:
            model.class_scores(model.run(legacy_preprocess(path, height, width)[None]))

    def streamed() -> None:
        failed = [r.error for r in model.predict_iter(files, batch_size=32) if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} photos failed: {failed[0]}")

    rates: dict[str, float] = {}
    for name, call in (("one_at_a_time_v010", one_at_a_time), ("predict_iter", streamed)):
        call()  # warm-up: file cache, interpreter
        best = min(_seconds(call) for _ in range(repeats))
        rates[name] = len(files) / best
    rates["ratio"] = rates["predict_iter"] / rates["one_at_a_time_v010"]
    return {"artifact": artifact.name, "images": len(files), "threads": threads, "batch_size": 32, **rates}


def _seconds(call: Callable[[], None]) -> float:
    begin = time.perf_counter()
    call()
    return time.perf_counter() - begin


def end_to_end(artifacts: list[Path], data: Path, threads: tuple[int, ...], seconds: float, limit: int) -> dict:
    """`edgelite bench --end-to-end` rows for these artifacts on these files."""
    options = BenchOptions(threads=threads, seconds=seconds, warmup=2, data=data, limit=limit, end_to_end=True)
    report = run_bench(artifacts, options)
    return report.to_dict(samples=False)


def peak_memory(artifact: Path, dataset: Path, work: Path, log: Callable[[str], None]) -> dict:
    """Peak RSS of `edgelite predict --jsonl --out` over folders of 50 and 5,000 images (links to the photos)."""
    photos = sorted(p for p in dataset.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    result = {}
    for count in MEMORY_SIZES:
        folder = work / f"folder-{count}"
        if not folder.is_dir() or len(list(folder.iterdir())) != count:
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                link = folder / f"{i:05d}.jpg"
                if not link.exists():
                    link.symlink_to(photos[i % len(photos)])
        command = [sys.executable, "-m", "edgelite", "predict", str(artifact), str(folder), "--jsonl",
                   "--out", str(work / f"predict-{count}.jsonl"), "--threads", "2"]
        wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                   "code = subprocess.run(sys.argv[1:]).returncode; "
                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, code)")
        done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True)
        peak_kb, wall, code = done.stdout.split()
        lines = len((work / f"predict-{count}.jsonl").read_text().splitlines())
        result[str(count)] = {"peak_rss_mb": int(peak_kb) / 1024, "seconds": float(wall), "exit_code": int(code),
                              "lines": lines}
        log(f"  predict over {count} images: peak RSS {int(peak_kb) / 1024:.0f} MB, {float(wall):.1f} s")
    small, large = (result[str(n)]["peak_rss_mb"] for n in MEMORY_SIZES)
    result["ratio"] = large / small
    return result


def run_photos(models: dict, dataset: Path, work: Path, seconds: float, log: Callable[[str], None]) -> dict:
    """Every measurement of this stage; `models` is what prepare.prepare returns."""
    twelve = make_12mp_set(dataset, work, log)
    big = sorted(p for p in twelve.rglob("*.jpg"))
    originals = sorted(p for p in (dataset / "validation").rglob("*.jpg"))
    by_name = {family: {p.name: p for p in m["artifacts"]} for family, m in models.items()}

    def artifact(family: str, suffix: str) -> Path:
        return next(p for name, p in by_name[family].items() if name.endswith(suffix))

    results: dict = {"twelve_mp_images": len(big), "original_images": len(originals)}
    log("decode times on 12 MP JPEGs")
    results["decode_ms"] = decode_times(big[::max(1, len(big) // DECODE_SAMPLE)][:DECODE_SAMPLE], (299, 150))
    log("exact vs fast decode agreement (trained scratch CNN)")
    scratch = artifact("scratch", "_float32.tflite")
    results["agreement"] = {"12mp": decode_agreement(scratch, big), "original": decode_agreement(scratch, originals)}
    log("folder rate of the scratch CNN on the original photos")
    results["scratch_folder"] = folder_rates(artifact("scratch", "_int8.tflite"), originals, threads=2)
    log("end to end: Xception artifacts on the 12 MP set")
    xception = [artifact("xception", s) for s in ("_int8.onnx", "_float32.onnx", "_int8.tflite", "_float32.tflite")]
    results["xception_end_to_end"] = end_to_end(xception, twelve, (2,), seconds, limit=64)
    log("end to end: scratch artifacts on the original photos")
    scratch_all = [artifact("scratch", s) for s in ("_int8.tflite", "_float32.tflite", "_int8.onnx", "_float32.onnx")]
    results["scratch_end_to_end"] = end_to_end(scratch_all, dataset / "validation", (2,), seconds, limit=64)
    log("peak memory of edgelite predict over 50 and 5,000 images")
    results["memory"] = peak_memory(artifact("scratch", "_int8.tflite"), dataset, work, log)
    return results

