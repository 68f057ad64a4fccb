"""CPU per stage of one `/predict` request, each stage timed alone in this process (thread CPU time).

    python benchmarks/hotpath_stages.py ARTIFACT [--photos 64] [--repeat 3]

Times, on real photos, what the server does for one upload: the header read
that sizes the decode budget, the JPEG decode, the resize, the float32
conversion, inference (batch of 1 and per image in a batch of 8), ranking,
the JSON answer, the metric updates and the access-log line. HTTP parsing and
the event loop are what is left of the server's CPU per request
(`load_serve.py`) once these are taken away.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

DATA = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small")) / "validation"


def cpu_ms(function: Callable[[], object], calls: int, repeat: int) -> float:
    """Median over `repeat` rounds of the thread CPU ms one call of `function` takes."""
    rounds = []
    for _ in range(repeat):
        started = time.thread_time()
        for _ in range(calls):
            function()
        rounds.append((time.thread_time() - started) * 1000.0 / calls)
    return float(np.median(rounds))


def stages(artifact: Path, photos: list[bytes], repeat: int) -> dict[str, float]:
    from starlette.responses import JSONResponse

    from edgelite.runtime import load
    from edgelite.runtime.preprocess import FAST_DECODE_MARGIN, decoded_bytes
    from edgelite.serve.metrics import Metrics
    from edgelite.serve.options import ServeOptions
    from edgelite.serve.predict_format import predict_answer

    model = load(artifact, threads=1)
    n = len(photos)
    cycle = iter(range(10 ** 9))

    def photo() -> bytes:
        return photos[next(cycle) % n]

    def decode_only() -> Image.Image:
        image = Image.open(io.BytesIO(photo()))
        if model.decode == "fast":
            image.draft("RGB", (FAST_DECODE_MARGIN * model.height,) * 2)
        image.load()
        return image

    decoded = [decode_only() for _ in range(n)]
    resized = [image.resize((model.width, model.height), Image.Resampling.BILINEAR) for image in decoded]
    pixels = np.stack([model.prepare(data).pixels for data in photos[:8]])
    scores = model.class_scores(model.run(pixels[:1]))
    ranked = model.rank(scores, 5)[0]
    answer = predict_answer("m", ranked, [], {"read": 0.1, "decode": 1.0, "queue": 0.5, "inference": 1.0,
                                              "total": 3.0})
    metrics = Metrics(ServeOptions())
    access = logging.getLogger("hotpath.access")
    access.addHandler(logging.StreamHandler(open(os.devnull, "w")))
    access.setLevel(logging.INFO)
    access.propagate = False

    def metric_updates() -> None:  # what RequestLog and the batcher recorded per request at batch 1 before issue 22
        metrics.requests.labels(route="/predict", method="POST", status="200").inc()
        metrics.latency.labels(route="/predict").observe(0.004)
        metrics.batch_size.labels(model="m").observe(1)
        metrics.inference_seconds.labels(model="m").observe(0.001)
        for _ in range(2):  # reading and queue depth: up and down each
            metrics.queue_depth.labels(model="m").set(1)
            metrics.reading.labels(model="m").set(1)

    calls = 4 * n
    k = iter(range(10 ** 9))
    result = {
        "header read (decoded_bytes)": cpu_ms(lambda: decoded_bytes(photo()), calls, repeat),
        "JPEG decode": cpu_ms(decode_only, calls, repeat),
        "resize": cpu_ms(lambda: decoded[next(k) % n].resize((model.width, model.height),
                                                              Image.Resampling.BILINEAR), calls, repeat),
        "to float32": cpu_ms(lambda: np.asarray(resized[next(k) % n], dtype=np.float32), calls, repeat),
        "preprocess (all of the above but the header)": cpu_ms(lambda: model.prepare(photo()), calls, repeat),
        "inference, batch 1": cpu_ms(lambda: model.class_scores(model.run(pixels[:1])), calls, repeat),
        "inference, per image of a batch of 8": cpu_ms(lambda: model.class_scores(model.run(pixels)), n,
                                                       repeat) / 8,
        "rank top 5": cpu_ms(lambda: model.rank(scores, 5), calls, repeat),
        "JSON answer (JSONResponse)": cpu_ms(lambda: JSONResponse(answer), calls, repeat),
        "metric updates (the per-request pattern before issue 22)": cpu_ms(metric_updates, calls, repeat),
        "access line (logging)": cpu_ms(lambda: access.info('%s "%s %s HTTP/%s" %d %.1fms id=%s%s', "127.0.0.1:5",
                                                            "POST", "/predict", "1.1", 200, 3.2,
                                                            "0123456789abcdef", " model=m batch=1"),
                                        calls, repeat),
    }
    try:
        import orjson

        result["JSON answer (orjson)"] = cpu_ms(lambda: orjson.dumps(answer), calls, repeat)
    except ImportError:
        pass
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    files = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    step = max(1, len(files) // args.photos)
    photos = [p.read_bytes() for p in files[::step][:args.photos]]
    result = stages(args.artifact, photos, args.repeat)
    for name, ms in result.items():
        print(f"{ms:8.3f} ms  {name}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
