"""Slow and heavy clients against `edgelite serve` (issue 16, points 4 and 5).

    python benchmarks/hostile.py ARTIFACT [--stalled 256] [--good 200] [--pngs 8] [--small 10]
        [--repo PATH] [--json out.json]

Starts its own servers on free 127.0.0.1 ports (never another address):

1. Stalled bodies: opens --stalled connections that send their headers and 10
   bytes of a 1000-byte body, then nothing. While they are held it sends
   --good photo uploads one after another and reports their statuses and
   p50/p99 latency, `/v2/health/ready`, and the server's RSS against idle;
   then it waits for the stalled connections' answers (408 after
   --body-timeout) and reports how long they were held.
2. Huge decodes: sends --pngs ~200 KB 16-bit grey PNGs of 9400x9400 at once
   and, while they decode, --small ~9 KB JPEGs one after another; reports the
   server's peak RSS (sampled every 10 ms), its RSS once the PNGs are answered,
   and the small JPEGs' latency.

`--repo` serves from another checkout (e.g. the previous release) for a
before/after comparison. Every server runs with `serve`'s default options.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_serve import REPO, ServerProcess, _rss_mb  # noqa: E402  (the suite's server runner, loopback only)

HOST = "127.0.0.1"
MAX_STALLED = 1024
MAX_PNGS = 16
STALL_WAIT_S = 60.0  # how long stalled connections are watched for an answer (serve's default body timeout: 15 s)


def machine() -> dict:
    """CPU model and flags that matter here, and the load average now."""
    info = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    return {"cpu": model, "cpus": os.cpu_count(), "flags": sorted(flags & {"avx", "avx2", "fma", "f16c", "avx512f",
                                                                            "avx512_vnni", "avx_vnni"}),
            "platform": platform.platform(), "python": platform.python_version(), "load": os.getloadavg()}


def small_jpeg(seed: int = 0) -> bytes:
    """A ~9 KB photo-like JPEG (smooth colours plus noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:200, 0:200]
    base = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.float64) * 1.2
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


def sixteen_bit_png(side: int = 9400, seed: int = 0) -> bytes:
    """A 16-bit grey PNG, side x side, mostly one value: ~200 KB that decodes to 177 MB (more once converted)."""
    wide = np.full((side, side), 30000, np.uint16)
    grid = wide[::181, ::173]
    wide[::181, ::173] = np.random.default_rng(seed).integers(0, 65535, size=grid.shape, dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class RssSampler:
    """The server's RSS every 10 ms on a thread; `peak` since the last `reset`."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, _rss_mb(self.pid))
            except (OSError, RuntimeError):
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def stall(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=120)
    sock.sendall(f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\n"
                 f"Content-Length: 1000\r\n\r\n0123456789".encode())
    return sock


def _post(client: httpx.Client, url: str, data: bytes, kind: str) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        status = client.post(url, content=data, headers={"Content-Type": kind}).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.perf_counter() - started


def warmed_up(artifact: Path, repo: Path, photo: bytes, log: Path) -> tuple[ServerProcess, float]:
    """A server with `serve`'s default options that has answered a few uploads, and its RSS then (MiB)."""
    server = ServerProcess(artifact, [], log, repo)
    with httpx.Client(timeout=60) as client:
        for _ in range(5):
            _post(client, f"{server.url}/predict", photo, "image/jpeg")
    return server, _rss_mb(server.process.pid)


def stalled_bodies(artifact: Path, repo: Path, count: int, good: int, photo: bytes, log: Path) -> dict:
    server, idle = warmed_up(artifact, repo, photo, log)
    url = f"{server.url}/predict"
    try:
        with httpx.Client(timeout=60) as client:
            sampler = RssSampler(server.process.pid)
            opened = time.monotonic()
            stalled = [stall(server.port) for _ in range(count)]
            time.sleep(1.0)  # let the server read every header
            ready = client.get(f"{server.url}/v2/health/ready").status_code
            answers = [_post(client, url, photo, "image/jpeg") for _ in range(good)]
            held_rss = sampler.stop()
        first_answer, closed = None, 0
        for sock in stalled:
            sock.settimeout(max(0.01, opened + STALL_WAIT_S - time.monotonic()))
            try:
                data = sock.recv(4096)
                first_answer = first_answer or data.split(b"\r\n", 1)[0].decode(errors="replace")
                closed += data.startswith(b"HTTP/1.1 408")
            except OSError:
                pass
            finally:
                sock.close()
        held_s = time.monotonic() - opened
        seconds = [s for status, s in answers if status == 200]
        return {"stalled": count, "ready_while_held": ready, "good_sent": good,
                "good_statuses": {str(k): [s for s, _ in answers].count(k) for k in sorted({s for s, _ in answers})},
                "good_p50_ms": percentile(seconds, 50) * 1000, "good_p99_ms": percentile(seconds, 99) * 1000,
                "good_max_ms": max(seconds, default=float("nan")) * 1000,
                "rss_idle_mb": idle, "rss_peak_held_mb": held_rss, "stalled_408": closed,
                "stalled_first_answer": first_answer, "stalled_held_s": held_s}
    finally:
        server.stop()


async def _huge_and_small(url: str, pngs: int, small: int, png: bytes, photo: bytes) -> tuple[list, list, float]:
    async with httpx.AsyncClient(timeout=300) as client:
        async def post(data: bytes, kind: str) -> tuple[int, float]:
            started = time.perf_counter()
            try:
                status = (await client.post(url, content=data, headers={"Content-Type": kind})).status_code
            except httpx.HTTPError:
                status = 0
            return status, time.perf_counter() - started

        started = time.perf_counter()
        huge = [asyncio.create_task(post(png, "image/png")) for _ in range(pngs)]
        await asyncio.sleep(0.5)  # the PNGs are in and decoding
        smalls = []
        for _ in range(small):
            smalls.append(await post(photo, "image/jpeg"))
            await asyncio.sleep(0.2)
        big = await asyncio.gather(*huge)
        return big, smalls, time.perf_counter() - started


def huge_decodes(artifact: Path, repo: Path, pngs: int, small: int, png: bytes, photo: bytes, log: Path) -> dict:
    server, idle = warmed_up(artifact, repo, photo, log)
    url = f"{server.url}/predict"
    try:
        sampler = RssSampler(server.process.pid)
        big, smalls, took = asyncio.run(_huge_and_small(url, pngs, small, png, photo))
        peak = sampler.stop()
        after = _rss_mb(server.process.pid)
        time.sleep(2.0)
        later = _rss_mb(server.process.pid)
        seconds = [s for status, s in smalls if status == 200]
        return {"pngs": pngs, "png_kb": len(png) / 1024, "png_statuses": sorted(status for status, _ in big),
                "pngs_all_answered_s": took, "rss_idle_mb": idle, "rss_peak_mb": peak, "rss_after_mb": after,
                "rss_after_2s_mb": later, "small_sent": small, "small_ok": len(seconds),
                "small_p50_ms": percentile(seconds, 50) * 1000,
                "small_max_ms": max(seconds, default=float("nan")) * 1000}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", type=Path, help="a .tflite or .onnx artifact")
    parser.add_argument("--stalled", type=int, default=256, help="connections stalled mid-body")
    parser.add_argument("--good", type=int, default=200, help="good uploads sent while they are held")
    parser.add_argument("--pngs", type=int, default=8, help="huge 16-bit PNGs sent at once")
    parser.add_argument("--small", type=int, default=10, help="small JPEGs sent while they decode")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose edgelite serves")
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args()
    if not 1 <= args.stalled <= MAX_STALLED or not 1 <= args.pngs <= MAX_PNGS:
        parser.error(f"--stalled must be 1..{MAX_STALLED} and --pngs 1..{MAX_PNGS}")
    report: dict = {"machine_start": machine(), "repo": str(args.repo.resolve()), "artifact": str(args.artifact)}
    photo, png = small_jpeg(), sixteen_bit_png()
    with tempfile.TemporaryDirectory(prefix="edgelite-hostile-") as tmp:
        report["stalled_bodies"] = stalled_bodies(args.artifact.resolve(), args.repo, args.stalled, args.good, photo,
                                                  Path(tmp) / "stalled.log")
        report["huge_decodes"] = huge_decodes(args.artifact.resolve(), args.repo, args.pngs, args.small, png, photo,
                                              Path(tmp) / "huge.log")
    report["machine_end"] = machine()
    report["small_jpeg_bytes"] = len(photo)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
