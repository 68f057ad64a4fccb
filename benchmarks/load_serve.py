"""Load `edgelite serve` with clothing photos: throughput, p50/p99 latency, errors, server memory.

    python benchmarks/load_serve.py ARTIFACT [--requests 2000] [--concurrency 16] [--threads 1]
        [--bad-fraction 0.1] [--bench-seconds 10] [--json out.json]

Starts its own server on a free 127.0.0.1 port (never another address), warms
it up, sends --requests uploads at --concurrency from a bounded asyncio httpx
client, and stops after --max-seconds whatever is left. Reports throughput,
latency percentiles, errors, the server's CPU per request (all threads, and
the event-loop thread alone: HTTP, routing, JSON, metrics, the access log),
its resident memory after the warm-up and after the run, the server's mean
batch size, and (unless --bench-seconds 0) `edgelite bench` throughput for
the same artifact and threads, measured in the same run, for the ratio. With --bad-fraction, that share of the uploads
is bad (not an image, truncated JPEG, decompression bomb, wrong content type,
over the upload limit): each must get its 4xx, each good one its answer, and
the server must not restart.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small")) / "validation"
HOST = "127.0.0.1"  # loopback only
MAX_REQUESTS = 20_000
MAX_CONCURRENCY = 64
SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Upload:
    """One planned request: what is sent, and the status it must get."""

    kind: str
    body: bytes
    content_type: str
    status: int


@dataclass
class Outcome:
    kind: str
    status: int  # 0: no answer (transport error or time limit)
    seconds: float
    correct: bool
    detail: str = ""


def _photos(folder: Path, limit: int) -> list[bytes]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        raise SystemExit(f"no photos under {folder}; pass --data")
    step = max(1, len(files) // limit)
    return [p.read_bytes() for p in files[::step][:limit]]


def _bomb() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _plan(photos: list[bytes], count: int, bad_fraction: float, max_upload_bytes: int, seed: int) -> list[Upload]:
    rng = random.Random(seed)
    bad = [Upload("not-an-image", b"this is not an image\n" * 40, "image/jpeg", 400),
           Upload("truncated-jpeg", photos[0][: len(photos[0]) // 3], "image/jpeg", 400),
           Upload("decompression-bomb", _bomb(), "image/png", 400),
           Upload("wrong-content-type", photos[0], "text/plain", 415),
           Upload("over-the-limit", b"\xff" * (max_upload_bytes + 1), "image/jpeg", 413)]
    plan, bad_seen = [], 0
    for i in range(count):
        if rng.random() < bad_fraction:
            plan.append(bad[bad_seen % len(bad)])
            bad_seen += 1
        else:
            plan.append(Upload("good", photos[i % len(photos)], "image/jpeg", 200))
    return plan


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def _cpu_s(pid: int, thread: Optional[int] = None) -> float:
    """User + system CPU seconds the process has used (all its threads), or one of its threads."""
    with open(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """`edgelite serve` from `repo` (its folder is first on the server's path) on a free loopback port."""

    def __init__(self, artifact: Path, options: list[str], log: Path, repo: Path = REPO):
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "edgelite", "serve", str(artifact), "--host", HOST,
                   "--port", str(self.port), *options]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=repo)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("the server was not ready within 180 s")

    def metric_sum(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if re.match(rf"{name}[{{ ]", line))

    def stop(self) -> Optional[int]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


async def _send(client: httpx.AsyncClient, url: str, upload: Upload, labels: set[str]) -> Outcome:
    started = time.perf_counter()
    try:
        answer = await client.post(url, content=upload.body, headers={"Content-Type": upload.content_type})
    except httpx.HTTPError as exc:
        return Outcome(upload.kind, 0, time.perf_counter() - started, False, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    if answer.status_code != upload.status:
        return Outcome(upload.kind, answer.status_code, seconds, False, answer.text[:200])
    body = answer.json()
    if upload.status == 200:
        correct = bool(body.get("predictions")) and body["predictions"][0]["label"] in labels
    else:
        correct = isinstance(body.get("error"), str) and bool(body["error"])
    return Outcome(upload.kind, answer.status_code, seconds, correct, "" if correct else answer.text[:200])


async def _load(url: str, plan: list[Upload], concurrency: int, deadline: float, labels: set[str],
                client: str = "httpx") -> list[Outcome]:
    """Send the plan with `concurrency` workers; stop issuing at `deadline` (monotonic)."""
    outcomes: list[Outcome] = []
    queue = iter(plan)
    if client == "raw":
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        path = "/" + url.split("//", 1)[1].split("/", 1)[1]

        async def raw_worker() -> None:
            connection = None
            try:
                for upload in queue:  # a shared iterator: each upload is sent once
                    if time.monotonic() > deadline:
                        return
                    if connection is None:
                        connection = await asyncio.open_connection(host, int(port))
                    outcome, keep = await _send_raw(connection, host, path, upload, labels)
                    outcomes.append(outcome)
                    if not keep:
                        connection[1].close()
                        connection = None
            finally:
                if connection is not None:
                    connection[1].close()

        await asyncio.gather(*(raw_worker() for _ in range(concurrency)))
        return outcomes

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as session:
        async def worker() -> None:
            for upload in queue:  # a shared iterator: each upload is sent once
                if time.monotonic() > deadline:
                    return
                outcomes.append(await _send(session, url, upload, labels))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def _send_raw(connection: tuple, host: str, path: str, upload: Upload,
                    labels: set[str]) -> tuple[Outcome, bool]:
    """One keep-alive HTTP/1.1 POST by hand: the load client costing as little CPU as it can.

    Returns the outcome and whether the connection can be used again. Only
    what `edgelite serve` sends is understood: a status line, headers with a
    Content-Length, and a JSON body.
    """
    reader, writer = connection
    started = time.perf_counter()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {upload.content_type}\r\n"
            f"Content-Length: {len(upload.body)}\r\n\r\n").encode("latin-1")
    try:
        writer.write(head + upload.body)
        header = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        body = await asyncio.wait_for(reader.readexactly(int(fields.get("content-length", "0"))), 120)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
            ValueError) as exc:
        return Outcome(upload.kind, 0, time.perf_counter() - started, False, f"{type(exc).__name__}: {exc}"), False
    seconds = time.perf_counter() - started
    keep = fields.get("connection", "").lower() != "close"
    text = body.decode("utf-8", errors="replace")
    if status != upload.status:
        return Outcome(upload.kind, status, seconds, False, text[:200]), keep
    answer = json.loads(body)
    if upload.status == 200:
        correct = bool(answer.get("predictions")) and answer["predictions"][0]["label"] in labels
    else:
        correct = isinstance(answer.get("error"), str) and bool(answer["error"])
    return Outcome(upload.kind, status, seconds, correct, "" if correct else text[:200]), keep


def _bench_throughput(artifact: Path, threads: int, seconds: float) -> Optional[float]:
    """`edgelite bench` images/s (inference only) for the same artifact and threads, or None if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        result = subprocess.run([sys.executable, "-m", "edgelite", "bench", str(artifact), "--threads", str(threads),
                                 "--seconds", str(seconds), "--json", str(out)], cwd=REPO, capture_output=True,
                                text=True, timeout=600)
        if result.returncode != 0 or not out.exists():
            print(f"note: edgelite bench failed: {result.stderr.strip()[-500:]}", file=sys.stderr)
            return None
        return float(json.loads(out.read_text())["rows"][0]["throughput_ips"])


def _percentiles(seconds: list[float]) -> dict[str, Optional[float]]:
    if not seconds:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    values = np.array(seconds) * 1000.0
    return {"p50_ms": float(np.percentile(values, 50)), "p90_ms": float(np.percentile(values, 90)),
            "p99_ms": float(np.percentile(values, 99)), "max_ms": float(values.max())}


def run(args: argparse.Namespace) -> dict:
    photos = _photos(args.data, args.photos)
    max_upload_bytes = int(args.max_upload_mb * 1024 * 1024)
    plan = _plan(photos, args.requests, args.bad_fraction, max_upload_bytes, args.seed)
    options = ["--threads", str(args.threads), "--instances", str(args.instances), "--max-batch", str(args.max_batch),
               "--max-delay-ms", str(args.max_delay_ms), "--max-queue", str(args.max_queue),
               "--max-upload-mb", str(args.max_upload_mb)]
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(args.artifact, options, Path(tmp) / "serve.log")
        try:
            url = f"{server.url}/predict"
            labels = set(httpx.get(f"{server.url}/models", timeout=30).json()["models"][0]["labels"])
            warm = [Upload("good", photos[i % len(photos)], "image/jpeg", 200) for i in range(args.warmup)]
            warm_outcomes = asyncio.run(_load(url, warm, args.concurrency, time.monotonic() + 300, labels,
                                              args.client))
            rss_warm = _rss_mb(server.process.pid)
            batches_before = (server.metric_sum("edgelite_batch_size_sum"),
                              server.metric_sum("edgelite_batch_size_count"))
            cpu_before = _cpu_s(server.process.pid)
            loop_before = _cpu_s(server.process.pid, server.process.pid)  # the main thread runs the event loop
            started, client_before = time.perf_counter(), time.process_time()
            outcomes = asyncio.run(_load(url, plan, args.concurrency, time.monotonic() + args.max_seconds, labels,
                                         args.client))
            wall, client_cpu = time.perf_counter() - started, time.process_time() - client_before
            rss_after = _rss_mb(server.process.pid)
            cpu = _cpu_s(server.process.pid) - cpu_before
            loop_cpu = _cpu_s(server.process.pid, server.process.pid) - loop_before
            images = server.metric_sum("edgelite_batch_size_sum") - batches_before[0]
            calls = server.metric_sum("edgelite_batch_size_count") - batches_before[1]
            alive = server.process.poll() is None
        finally:
            exit_code = server.stop()
            log_tail = server.log.read_text(errors="replace").splitlines()[-5:]
    good = [o for o in outcomes if o.kind == "good"]
    bad = [o for o in outcomes if o.kind != "good"]
    wrong = [o for o in outcomes if not o.correct]
    bench_ips = _bench_throughput(args.artifact, args.threads, args.bench_seconds) \
        if args.bench_seconds > 0 else None
    good_ips = sum(o.correct for o in good) / wall if wall > 0 else 0.0
    return {
        "artifact": str(args.artifact),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "planned": len(plan), "sent": len(outcomes), "stopped_at_time_limit": len(outcomes) < len(plan),
        "warmup_errors": sum(not o.correct for o in warm_outcomes),
        "good": len(good), "good_answered": sum(o.correct for o in good),
        "bad": len(bad), "bad_refused_as_expected": sum(o.correct for o in bad),
        "bad_by_kind": {kind: sum(o.kind == kind for o in bad) for kind in sorted({o.kind for o in bad})},
        "errors": len(wrong), "error_examples": [asdict(o) for o in wrong[:5]],
        "wall_s": wall, "throughput_rps": len(outcomes) / wall if wall > 0 else 0.0,
        "good_throughput_ips": good_ips,
        "latency_good": _percentiles([o.seconds for o in good if o.correct]),
        "latency_bad": _percentiles([o.seconds for o in bad if o.correct]),
        "mean_batch_size": images / calls if calls else None,
        "server_cpu_ms_per_request": cpu * 1000.0 / len(outcomes) if outcomes else None,
        "server_loop_cpu_ms_per_request": loop_cpu * 1000.0 / len(outcomes) if outcomes else None,
        "client": args.client,
        "client_cpu_ms_per_request": client_cpu * 1000.0 / len(outcomes) if outcomes else None,
        "loadavg_end": list(os.getloadavg()),
        "bench_throughput_ips": bench_ips,
        "serve_over_bench": good_ips / bench_ips if bench_ips else None,
        "rss_after_warmup_mb": rss_warm, "rss_after_run_mb": rss_after,
        "rss_ratio": rss_after / rss_warm if rss_warm else None,
        "server_alive_after_run": alive, "restarts": 0 if alive else 1,
        "server_exit_code": exit_code, "server_log_tail": log_tail,
    }


def _print(report: dict) -> None:
    good, bad = report["latency_good"], report["latency_bad"]
    lines = [
        f"artifact            {report['artifact']}",
        f"requests            {report['sent']} sent of {report['planned']} planned"
        + (" (stopped at --max-seconds)" if report["stopped_at_time_limit"] else ""),
        f"concurrency         {report['options']['concurrency']}, threads {report['options']['threads']}, "
        f"instances {report['options']['instances']}, "
        f"max batch {report['options']['max_batch']}, max delay {report['options']['max_delay_ms']} ms",
        f"good                {report['good_answered']} answered of {report['good']}",
        f"bad                 {report['bad_refused_as_expected']} refused as expected of {report['bad']} "
        f"{report['bad_by_kind']}",
        f"errors              {report['errors']}",
        f"throughput          {report['good_throughput_ips']:.1f} good images/s, {report['throughput_rps']:.1f} "
        f"requests/s over {report['wall_s']:.1f} s",
        "latency (good)      " + ", ".join(f"{k} {v:.1f}" for k, v in good.items() if v is not None),
    ]
    if report["bad"]:
        lines.append("latency (bad)       " + ", ".join(f"{k} {v:.1f}" for k, v in bad.items() if v is not None))
    if report["mean_batch_size"] is not None:
        lines.append(f"mean batch size     {report['mean_batch_size']:.2f}")
    if report["server_cpu_ms_per_request"] is not None:
        lines.append(f"server CPU          {report['server_cpu_ms_per_request']:.2f} ms per request, "
                     f"{report['server_loop_cpu_ms_per_request']:.2f} of them on the event-loop thread "
                     f"(load average at the end {report['loadavg_end'][0]:.2f})")
        lines.append(f"client CPU          {report['client_cpu_ms_per_request']:.2f} ms per request "
                     f"({report['client']} client, same cores)")
    if report["bench_throughput_ips"]:
        lines.append(f"edgelite bench      {report['bench_throughput_ips']:.1f} images/s (inference only); "
                     f"serve/bench {report['serve_over_bench']:.2f}")
    lines += [f"server RSS          {report['rss_after_warmup_mb']:.1f} MiB after warm-up, "
              f"{report['rss_after_run_mb']:.1f} MiB after the run (x{report['rss_ratio']:.3f})",
              f"restarts            {report['restarts']}; exit code on SIGTERM {report['server_exit_code']}"]
    for error in report["error_examples"]:
        lines.append(f"  error: {error}")
    print("\n".join(lines))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path, help="a .tflite or .onnx artifact")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (also for edgelite bench)")
    parser.add_argument("--instances", type=int, default=1, help="batches run at once (edgelite serve --instances)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--max-upload-mb", type=float, default=20.0)
    parser.add_argument("--bad-fraction", type=float, default=0.0, help="share of bad uploads, e.g. 0.1")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of photos (searched recursively)")
    parser.add_argument("--photos", type=int, default=200, help="photos held in memory and cycled")
    parser.add_argument("--warmup", type=int, default=128, help="untimed requests first (memory settles)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop sending after this long")
    parser.add_argument("--bench-seconds", type=float, default=10.0, help="edgelite bench budget; 0 skips it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--client", choices=("httpx", "raw"), default="httpx",
                        help="load client: httpx (a typical Python client) or raw (hand-written keep-alive "
                             "HTTP/1.1, a fraction of the CPU, so the ratio says more about the server)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= MAX_REQUESTS or not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--requests must be 1..{MAX_REQUESTS} and --concurrency 1..{MAX_CONCURRENCY}")
    if not 0.0 <= args.bad_fraction <= 1.0 or args.max_seconds <= 0:
        parser.error("--bad-fraction must be 0..1 and --max-seconds positive")
    report = run(args)
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    ok = report["errors"] == 0 and report["restarts"] == 0 and not report["stopped_at_time_limit"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
