"""Issue 22's done-when figures in one run, with the machine and its load.

    python benchmarks/hotpath_targets.py SMALL_ARTIFACT [--xception XCEPTION_299_ARTIFACT] [--requests 2000]
        [--threads 2] [--loop-artifact SCRATCH_CNN] [--json out.json]

1. `load_serve.py` on SMALL_ARTIFACT (the small Xception-style int8 model):
   server CPU per request (target <= 2.0 ms; split into inference alone, timed
   at batch 8 with the same threads, and the rest) and served / `bench`
   (>= 0.5x), client and server sharing the machine's cores. The target lines
   use the hand-written keep-alive client (`--client raw`, about 0.3 ms of CPU
   per request); a line after them gives the same run with httpx (about 3 ms).
2. `hotpath_stream.py`: `predict_iter` on the clothing validation photos
   against the slower of its stages (>= 0.8x, on SMALL_ARTIFACT) and against
   the one-at-a-time loop (>= 3x, on --loop-artifact, the small CNN; default
   SMALL_ARTIFACT), with --threads interpreter threads and with one (which
   leaves a core to decoding on a 2-core machine).
3. With --xception, `load_serve.py` on the Xception 299x299 int8 artifact
   (--xception-requests uploads at concurrency 8): served / `bench` >= 0.95x.

Each line says the figure, its target and met / not met; the header gives the
CPU model, its flags of interest and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hotpath_stream  # noqa: E402  (benchmarks/ is not a package)
import load_serve  # noqa: E402

FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "neon", "asimd", "asimddp")


def machine() -> str:
    """CPU model, logical CPUs and the instruction-set flags that matter to the interpreters."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and model == "unknown CPU":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    have = [f for f in FLAGS if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, flags {' '.join(have) or 'unknown'}"


def _served(artifact: Path, requests: int, concurrency: int, threads: int, bench_seconds: float,
            client: str = "raw", instances: int = 1) -> dict:
    args = argparse.Namespace(
        artifact=artifact, requests=requests, concurrency=concurrency, threads=threads, instances=instances,
        max_batch=8, max_delay_ms=5.0, max_queue=64, max_upload_mb=20.0, bad_fraction=0.0, data=load_serve.DATA,
        photos=200, warmup=min(128, requests), max_seconds=900.0, bench_seconds=bench_seconds, seed=0, json=None,
        client=client)
    return load_serve.run(args)


def _line(name: str, value: Optional[float], unit: str, target: str, met: Optional[bool], load: str) -> str:
    shown = "n/a" if value is None else f"{value:.2f}{unit}"
    verdict = "n/a" if met is None else ("met" if met else "NOT met")
    if not target:  # a part of the line above, not a target of its own
        return f"{name:<44} {shown:>10}"
    return f"{name:<44} {shown:>10}  target {target:<8} {verdict:<8} {load}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path, help="the small int8 model (the issue's 112 px Xception-style one)")
    parser.add_argument("--loop-artifact", type=Path, help="model for the one-at-a-time comparison (the small CNN)")
    parser.add_argument("--xception", type=Path, help="the Xception 299x299 int8 artifact, if there is one")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--xception-requests", type=int, default=240)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bench-seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    files = hotpath_stream.read_photos(hotpath_stream.DATA)
    report: dict = {"machine": machine(), "loadavg_start": list(os.getloadavg())}
    print(f"machine  {report['machine']}\nload average at the start {report['loadavg_start'][0]:.2f}", flush=True)

    small = _served(args.artifact, args.requests, 16, args.threads, args.bench_seconds)
    typical = _served(args.artifact, args.requests, 16, args.threads, args.bench_seconds, client="httpx")
    spread = _served(args.artifact, args.requests, 16, 1, 0, instances=args.threads)
    inference_ms = hotpath_stream.inference_cpu_ms(args.artifact, files, args.threads, 8)
    load_small = f"(load {small['loadavg_end'][0]:.2f})"
    stream = hotpath_stream.rates(args.artifact, files, args.threads, 32, args.repeats)
    loop = stream if args.loop_artifact is None else \
        hotpath_stream.rates(args.loop_artifact, files, args.threads, 32, args.repeats)
    # "Decode on the spare threads": one interpreter thread leaves the other core to decoding.
    spare = hotpath_stream.rates(args.artifact, files, 1, 32, args.repeats)
    spare_loop = spare if args.loop_artifact is None else \
        hotpath_stream.rates(args.loop_artifact, files, 1, 32, args.repeats)
    report.update(serve_small=small, serve_small_httpx=typical, serve_small_instances=spread,
                  inference_cpu_ms_per_image_batch8=inference_ms, stream=stream, stream_loop=loop,
                  stream_one_thread=spare, stream_loop_one_thread=spare_loop)
    cpu, ratio = small["server_cpu_ms_per_request"], small["serve_over_bench"]
    lines = [
        _line("server CPU per request, small model", cpu, " ms", "<= 2.0", cpu is not None and cpu <= 2.0,
              load_small),
        _line("  of it, inference alone (batch 8)", inference_ms, " ms", "", None, ""),
        _line("  the rest: decode, HTTP, hand-offs", None if cpu is None else cpu - inference_ms, " ms", "", None,
              ""),
        _line("served / bench, small model, concurrency 16", ratio, "x", ">= 0.5",
              None if ratio is None else ratio >= 0.5, load_small),
        _line("  the same with an httpx client", typical["serve_over_bench"], "x", ">= 0.5",
              None if typical["serve_over_bench"] is None else typical["serve_over_bench"] >= 0.5,
              f"(client CPU {typical['client_cpu_ms_per_request']:.2f} ms/request, raw client's "
              f"{small['client_cpu_ms_per_request']:.2f})"),
        _line(f"  the same with --threads 1 --instances {args.threads}",
              spread["good_throughput_ips"] / small["bench_throughput_ips"] if small["bench_throughput_ips"] else None,
              "x", ">= 0.5", None if not small["bench_throughput_ips"] else
              spread["good_throughput_ips"] / small["bench_throughput_ips"] >= 0.5,
              f"(server CPU {spread['server_cpu_ms_per_request']:.2f} ms/request, mean batch "
              f"{spread['mean_batch_size'] or 0:.2f})"),
    ]
    for name, rate, rate_loop in ((f"{args.threads} interpreter threads", stream, loop),
                                  ("1 interpreter thread", spare, spare_loop)):
        lines += [
            _line(f"predict_iter / slower stage, {name}", rate["predict_iter_over_slower_stage"], "x", ">= 0.8",
                  rate["predict_iter_over_slower_stage"] >= 0.8, f"(load {rate['loadavg_end'][0]:.2f})"),
            _line(f"predict_iter / one-at-a-time loop, {name}", rate_loop["predict_iter_over_loop"], "x",
                  ">= 3", rate_loop["predict_iter_over_loop"] >= 3.0,
                  f"({rate_loop['artifact']}, load {rate_loop['loadavg_end'][0]:.2f})"),
        ]
    if args.xception is not None:
        big = _served(args.xception, args.xception_requests, 8, args.threads, args.bench_seconds)
        report["serve_xception"] = big
        big_ratio = big["serve_over_bench"]
        lines.append(_line("Xception-299 served / bench", big_ratio, "x", ">= 0.95",
                           None if big_ratio is None else big_ratio >= 0.95, f"(load {big['loadavg_end'][0]:.2f})"))
    report["loadavg_end"] = list(os.getloadavg())
    print("\n".join(lines))
    print(f"  small model: {small['good_throughput_ips']:.1f} served img/s, "
          f"bench {small['bench_throughput_ips'] or 0:.1f} img/s, event-loop thread "
          f"{small['server_loop_cpu_ms_per_request']:.2f} ms/request, mean batch {small['mean_batch_size'] or 0:.2f}; "
          f"stream: decode {stream['decode_ips']:.0f}, inference "
          f"{stream['inference_ips']:.0f}, predict_iter {stream['predict_iter_ips']:.0f}, loop "
          f"{loop['one_at_a_time_v010_ips']:.0f} img/s; both stages on the shared cores allow "
          f"{stream['shared_cores_bound_ips']:.0f} img/s "
          f"(predict_iter at {stream['predict_iter_over_shared_cores_bound']:.2f}x); with 1 interpreter thread: "
          f"decode {spare['decode_ips']:.0f}, inference {spare['inference_ips']:.0f}, predict_iter "
          f"{spare['predict_iter_ips']:.0f}, loop {spare_loop['one_at_a_time_v010_ips']:.0f} img/s")
    print(f"load average at the end {report['loadavg_end'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
