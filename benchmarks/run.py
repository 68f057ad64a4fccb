"""Reproduce benchmarks/RESULTS.md: `python benchmarks/run.py` from the repository root.

Stages (each skipped when its output is already in the work folder, so an
interrupted run resumes): train the scratch CNN and Xception on clothing-small
and convert both to every artifact (prepare.py); measure the float32 peak;
bench every artifact and the Keras checkpoint at 1 and 2 threads with
`edgelite.bench`; time int8 variants with XNNPACK on and off (int8_study.py);
write RESULTS.md, results.json and the plots (results.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from int8_study import convert_variants, study  # noqa: E402
from photos import run_photos  # noqa: E402
from prepare import DATASET, prepare  # noqa: E402
from results import render, targets  # noqa: E402

from edgelite.atomic import write_bytes_atomic  # noqa: E402
from edgelite.bench import BenchOptions, run_bench, write_plot  # noqa: E402

COMMAND = "python benchmarks/run.py"
# Xception predicts about 2 images/s here: a seeded sample of the validation set keeps the suite near 40 min.
EVAL_LIMIT = {"xception": 150, "scratch": None}
NOTES = {
    "scratch": "Conv2D 32 3x3 -> MaxPool 2 -> Flatten -> Dense 64 -> Dense 10 softmax, trained from scratch "
               "by `edgelite train scratch` for 3 epochs on all 3068 training images.",
    "xception": "Keras Xception base with **random weights** (ImageNet weights cannot be downloaded here), "
                "frozen, + global pooling, Dense 100, dropout 0.2, Dense 10; only the head was trained, by "
                "`edgelite train xception --weights none`, 1 epoch on 250 training images (25 per class). Its accuracy is "
                "therefore close to chance and its scores are nearly flat, which makes int8 top-1 agreement "
                "harder than for a trained model; latency does not depend on the weights' values.",
}
INT8_TEXT = """\
What the tables below show, and why (the tables are this run's; between two runs of the suite on this
shared machine the ratios moved by up to ~0.1-0.2, the conclusions did not):

- **The CPU has no int8 dot-product instruction.** This EPYC has AVX2 and FMA but neither AVX-512 VNNI nor
  AVX-VNNI. A float32 FMA does 8 multiply-adds per 256-bit instruction. Without `vpdpbusd`, XNNPACK's
  QS8 kernels for AVX2 sign-extend int8 to int16 and use `vpmaddwd` (16 multiply-adds, pairwise summed,
  per instruction) plus the extension and requantization work, which nets out close to float32's rate.
  Xception at 299x299 is compute-bound (8.4 GMACs on ~21 M weights), so 4x smaller weights save little
  memory traffic. Result: TFLite int8 is only ~1.0-1.2x float32 at 1 thread in every variant.
- **Threads make it worse**: XNNPACK float32 speeds up ~1.9-2.3x with the second core, int8 only ~1.5-1.6x,
  so at 2 threads int8 is no faster than float32 (1.02x in the bench table, 0.75x in the study). The likely
  cause is the next point.
- **XNNPACK does not take the whole int8 graph**: the int8 interpreter holds 12 XNNPACK partitions (float32:
  1), so some ops (most likely the 12 residual ADDs of Xception, whose two inputs have different scales; not
  verified op by op) run on built-in kernels between partitions, with a hand-off at each boundary.
  Dynamic-range has 34 partitions, one per DEPTHWISE_CONV_2D, which XNNPACK does not run in hybrid mode,
  and is slower than float32 with XNNPACK.
- **XNNPACK on/off** (LiteRT's default `AUTO` op resolver vs `BUILTIN_WITHOUT_DEFAULT_DELEGATES`):
  XNNPACK is ~2.5x faster than the built-in kernels for float32 *and* int8. Turning it off never helps:
  int8 gains ~1.2x over float32 with the built-in kernels, but both are far slower than XNNPACK float32.
- **Per-channel vs per-tensor weights** and **uint8 vs int8 input/output**: within the noise of each other
  (the I/O type only changes the first and last QUANTIZE op; per-tensor only simplifies requantization).
  Neither is a lever towards 1.5x.
- **onnxruntime int8 is the exception**: its QDQ int8 model (uint8 activations x int8 weights) runs on
  MLAS's u8s8 AVX2 kernels (`vpmaddubsw`, 32 multiply-adds per instruction) and is clearly faster than
  onnxruntime float32 and than every TFLite artifact here (see the Xception table: ~0.6-0.7x the
  onnxruntime float32 p50). On an x86 AVX2 device the artifact to ship is `*_int8.onnx`; TFLite int8's
  advantage appears on CPUs with VNNI (Intel Cascade Lake+, AMD Zen 4+) or ARM dot-product (`asimddp`,
  e.g. the Raspberry Pi 5's Cortex-A76), which the benchmarks/pi suite covers.

No converter or LiteRT Python setting tried here (XNNPACK on/off, per-tensor, int8 I/O, threads) makes TFLite
int8 reach 1.5x float32 on this CPU, and none is worth changing a default for."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_gflops(threads: int) -> dict:
    """The float32 matmul peak with numpy's BLAS limited to `threads`, in a fresh process."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    code = "import json; from edgelite.bench.machine import float32_peak_gflops as f; print(json.dumps(f()))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          cwd=HERE.parent)
    return json.loads(done.stdout)


def python_start_s() -> float:
    """Median wall time of `python -c pass`: what a cold start costs before any edgelite code runs."""
    times = []
    for _ in range(5):
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def count_model_macs(checkpoint: Path) -> int:
    """MACs of the checkpoint, counted in a fresh process so TensorFlow does not stay in this one."""
    code = ("import sys; from pathlib import Path; from edgelite.convert.source import load_checkpoint; "
            "from edgelite.bench.macs import count_macs; print(count_macs(load_checkpoint(Path(sys.argv[1])).model))")
    done = subprocess.run([sys.executable, "-c", code, str(checkpoint)], capture_output=True, text=True,
                          check=True, cwd=HERE.parent, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return int(done.stdout.strip().splitlines()[-1])


def photos_stage(models: dict, args: argparse.Namespace) -> dict:
    """The real-photos stage, stamped with its own machine reading (it may run apart from the rest)."""
    from edgelite.bench.machine import machine_info

    started = time.perf_counter()
    machine = machine_info()
    log("real photos: 12 MP set, decode, end to end, folders, memory")
    photos = run_photos(models, DATASET, args.work, args.seconds, log)
    photos["machine"] = machine
    photos["machine"]["loadavg_end"] = list(os.getloadavg())
    photos["created"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    photos["duration_min"] = (time.perf_counter() - started) / 60
    return photos


SERVE_LOADS = (("scratch", "_int8.tflite", 0.0), ("scratch", "_int8.tflite", 0.1),
               ("xception", "_int8.onnx", 0.0), ("xception", "_int8.onnx", 0.1))


def serve_stage(models: dict, work: Path) -> dict:
    """2,000 requests at concurrency 16 against `edgelite serve` (127.0.0.1), clean and with 10% bad uploads."""
    from edgelite.bench.machine import machine_info

    machine, runs = machine_info(), []
    for family, suffix, bad in SERVE_LOADS:
        artifact = next(p for p in models[family]["artifacts"] if p.name.endswith(suffix))
        out = work / f"serve-{family}-{bad:g}.json"
        log(f"serve load: {artifact.name}, bad fraction {bad:g}")
        subprocess.run([sys.executable, str(HERE / "load_serve.py"), str(artifact), "--requests", "2000",
                        "--concurrency", "16", "--threads", "2", "--bad-fraction", str(bad), "--json", str(out)],
                       check=False, cwd=HERE.parent)
        runs.append(json.loads(out.read_text()) if out.is_file() else {"artifact": str(artifact), "failed": True})
    machine["loadavg_end"] = list(os.getloadavg())
    return {"machine": machine, "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgelite-benchmarks"),
                        help="Folder for checkpoints and artifacts (not committed).")
    parser.add_argument("--seconds", type=float, default=6.0, help="Timing budget per row.")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--skip-study", action="store_true", help="Leave out the int8 study.")
    parser.add_argument("--render-only", action="store_true",
                        help="Rewrite RESULTS.md from the results.json of the last run, measuring nothing.")
    parser.add_argument("--only-photos", action="store_true",
                        help="Run only the real-photos stage and put it into the last run's results.json.")
    parser.add_argument("--only-serve", action="store_true",
                        help="Run only the serve load stage and put it into the last run's results.json.")
    args = parser.parse_args()
    if args.render_only:
        results = json.loads((HERE / "results.json").read_text())
        write_bytes_atomic(HERE / "RESULTS.md", render(results, COMMAND, INT8_TEXT).encode())
        return
    if args.only_photos or args.only_serve:
        results = json.loads((HERE / "results.json").read_text())
        models = prepare(args.work, log)
        if args.only_photos:
            results["photos"] = photos_stage(models, args)
        if args.only_serve:
            results["serve"] = serve_stage(models, args.work)
        write_bytes_atomic(HERE / "results.json", (json.dumps(results, indent=1, default=str) + "\n").encode())
        write_bytes_atomic(HERE / "RESULTS.md", render(results, COMMAND, INT8_TEXT).encode())
        log("done: benchmarks/RESULTS.md")
        return
    threads = tuple(int(t) for t in args.threads.split(","))
    started = time.perf_counter()
    models = prepare(args.work, log)
    prepare_min = (time.perf_counter() - started) / 60

    log("measuring the float32 peak and Python's start-up")
    peaks = {t: peak_gflops(t) for t in threads}
    python_start = python_start_s()
    results: dict = {"threads": list(threads), "seconds": args.seconds, "warmup": args.warmup, "models": {}}
    for family in ("xception", "scratch"):
        model = models[family]
        macs = count_model_macs(model["checkpoint"])
        log(f"{family}: {macs / 1e9:.3f} GMACs; benching {len(model['artifacts'])} artifacts + Keras")
        options = BenchOptions(threads=threads, seconds=args.seconds, warmup=args.warmup,
                               data=DATASET / "validation", reference=model["checkpoint"],
                               limit=EVAL_LIMIT.get(family))
        report = run_bench(model["artifacts"], options,
                           lambda what, done, total: log(f"  bench {done + 1}/{total}: {what}") if done < total else None)
        write_plot(report, HERE / f"results-{family}.png")
        results["machine"], results["versions"] = report.machine, report.versions
        results["models"][family] = {
            "macs": macs, "checkpoint_name": model["checkpoint"].name,
            "checkpoint_size": model["checkpoint"].stat().st_size, "note": NOTES[family],
            "python_start_s": python_start, "bench": report.to_dict(),
        }
    if not args.skip_study:
        xception = {p.name: p for p in models["xception"]["artifacts"]}
        pick = lambda precision: next(p for n, p in xception.items() if n.endswith(f"_{precision}.tflite"))  # noqa: E731
        variants = {"float32": pick("float32"), "dynamic": pick("dynamic"),
                    "int8 per-channel, uint8 I/O": pick("int8")}
        variants.update(convert_variants(models["xception"]["checkpoint"], DATASET / "train",
                                         args.work / "int8-variants", log))
        results["int8_study"] = study(variants, threads, max(2.0, args.seconds / 2), log)
    results["photos"] = photos_stage(models, args)
    results["serve"] = serve_stage(models, args.work)
    peaks_after = {t: peak_gflops(t) for t in threads}
    results["peak_gflops"] = {"size": peaks[threads[0]]["matmul_size"],
                              "by_threads": {t: max(peaks[t]["gflops"], peaks_after[t]["gflops"]) for t in threads},
                              "start": {t: p["gflops"] for t, p in peaks.items()},
                              "end": {t: p["gflops"] for t, p in peaks_after.items()}}
    results["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    results["duration_min"] = (time.perf_counter() - started) / 60
    results["prepare_min"] = prepare_min
    write_bytes_atomic(HERE / "results.json", (json.dumps(results, indent=1, default=str) + "\n").encode())
    write_bytes_atomic(HERE / "RESULTS.md", render(results, COMMAND, INT8_TEXT).encode())
    for line in targets(results["models"])[1]:
        log(line)
    log(f"done in {results['duration_min']:.1f} min: benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
