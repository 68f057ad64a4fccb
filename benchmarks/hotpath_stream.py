"""`predict_iter` on a folder against the rate its slower stage allows, and against the one-at-a-time loop.

    python benchmarks/hotpath_stream.py ARTIFACT [--data DIR] [--threads 2] [--batch-size 32] [--repeats 3]

Each rate is images/s over the folder's JPEGs, best of --repeats runs:
decode alone (the artifact's `prepare` on `predict_iter`'s default number of
threads), inference alone (pre-decoded batches), `predict_iter`, and edgelite
0.1.0's loop (full decode, resize, one inference per image). The stages are
timed as `predict_iter` runs them: decoding to uint8 where the runtime has it. The files are
read once first, so the page cache holds them for every row.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import legacy_preprocess  # noqa: E402  (benchmarks/ is not a package)

DATA = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small")) / "validation"


def read_photos(folder: Path) -> list[Path]:
    """The folder's JPEGs, sorted, each read once so the page cache holds them for every timed row."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    for path in files:
        path.read_bytes()
    return files


def best_rate(call: Callable[[], None], images: int, repeats: int) -> float:
    call()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        begin = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - begin)
    return images / best


def rates(artifact: Path, files: list[Path], threads: int, batch_size: int, repeats: int) -> dict:
    from edgelite.runtime import load

    model = load(artifact, threads=threads)
    workers = min(4, os.cpu_count() or 1)  # predict_iter's default
    try:  # what predict_iter decodes to since issue 22; older runtimes have float32 only
        model.prepare(files[0], as_uint8=True)
        prepare = functools.partial(model.prepare, as_uint8=True)
    except TypeError:
        prepare = model.prepare
    pixels = np.stack([prepare(path).pixels for path in files[:batch_size]])
    batches = -(-len(files) // batch_size)

    def decode() -> None:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(prepare, files):
                pass

    def infer() -> None:
        for _ in range(batches):
            model.class_scores(model.run(pixels))

    def streamed() -> None:
        failed = [r.error for r in model.predict_iter(files, batch_size=batch_size) if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} photos failed: {failed[0]}")

    def one_at_a_time() -> None:
        for path in files:
            model.class_scores(model.run(legacy_preprocess(path, model.height, model.width)[None]))

    out = {"artifact": artifact.name, "images": len(files), "threads": threads, "decode_workers": workers,
           "batch_size": batch_size, "loadavg_start": list(os.getloadavg())}
    for name, call in (("decode_ips", decode), ("inference_ips", infer), ("predict_iter_ips", streamed),
                       ("one_at_a_time_v010_ips", one_at_a_time)):
        out[name] = best_rate(call, len(files), repeats)
    out["slower_stage_ips"] = min(out["decode_ips"], out["inference_ips"])
    out["predict_iter_over_slower_stage"] = out["predict_iter_ips"] / out["slower_stage_ips"]
    out["predict_iter_over_loop"] = out["predict_iter_ips"] / out["one_at_a_time_v010_ips"]
    # Where decode and inference each take every core when timed alone, running both shares the cores: the
    # pipeline's ceiling is then 1 / (1/decode + 1/inference), not the slower stage's rate (informative only).
    out["shared_cores_bound_ips"] = 1.0 / (1.0 / out["decode_ips"] + 1.0 / out["inference_ips"])
    out["predict_iter_over_shared_cores_bound"] = out["predict_iter_ips"] / out["shared_cores_bound_ips"]
    out["loadavg_end"] = list(os.getloadavg())
    return out


def inference_cpu_ms(artifact: Path, files: list[Path], threads: int, batch_size: int, repeats: int = 20) -> float:
    """Process CPU (every thread, the interpreter's workers included) per image of inference alone, at batch_size.

    The least of `repeats` timed calls: what a server running the same
    artifact, threads and batches cannot spend less than on each image.
    """
    from edgelite.runtime import load

    model = load(artifact, threads=threads)
    try:
        pixels = np.stack([model.prepare(path, as_uint8=True).pixels for path in files[:batch_size]])
    except TypeError:  # older runtimes decode to float32 only
        pixels = np.stack([model.prepare(path).pixels for path in files[:batch_size]])
    model.class_scores(model.run(pixels))  # warm-up
    best = float("inf")
    for _ in range(repeats):
        begin = time.process_time()
        model.class_scores(model.run(pixels))
        best = min(best, time.process_time() - begin)
    return best * 1000.0 / len(pixels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = rates(args.artifact, read_photos(args.data), args.threads, args.batch_size, args.repeats)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
