"""A real `edgelite serve` process on a free loopback port, and the images the tests send it."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Optional

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import COLORS, artifact, make_image

READY_TIMEOUT_S = 90.0
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """`python -m edgelite serve ...` in a subprocess, its log in a file."""

    def __init__(self, models: list[Path], tmp: Path, *options: str):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = tmp / f"serve-{self.port}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = [sys.executable, "-m", "edgelite", "serve", *map(str, models), "--host", HOST,
                   "--port", str(self.port), *options]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=Path(__file__).resolve().parents[2])
        self.wait_ready()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the server was not ready within {READY_TIMEOUT_S} s:\n{self.log()}")

    def wait_log(self, pattern: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log()):
                return
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in the server log within {timeout} s:\n{self.log()}")

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when the series does not exist yet)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
                if all(found.get(k) == v for k, v in labels.items()):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_metric(self, name: str, value: float, timeout: float = 30.0, **labels: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric(name, **labels) == value:
                return
            time.sleep(0.05)
        raise AssertionError(f"{name}{labels} did not reach {value} within {timeout} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> Optional[int]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@pytest.fixture(scope="session")
def served(artifacts, tmp_path_factory):
    """One server for the endpoint tests: the int8 TFLite artifact (the default) and the float32 ONNX one."""
    server = Server([artifact(artifacts, "tflite", "int8"), artifact(artifacts, "onnx", "float32")],
                    tmp_path_factory.mktemp("served"), "--max-upload-mb", "1", "--max-batch", "4")
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="session")
def int8_name(artifacts) -> str:
    return artifact(artifacts, "tflite", "int8").stem


@pytest.fixture(scope="session")
def onnx_name(artifacts) -> str:
    return artifact(artifacts, "onnx", "float32").stem


def jpeg_bytes(color: str = "red", seed: int = 1) -> bytes:
    buffer = io.BytesIO()
    make_image(COLORS[color], np.random.default_rng(seed)).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def png_bomb() -> bytes:
    """A PNG header claiming 30000 x 30000 pixels, with almost no data."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


async def held_upload(url: str, data: bytes, release: asyncio.Event) -> httpx.Response:
    """POST an image whose body stops after a few bytes until `release` is set: the request holds its slot."""

    async def body():
        yield data[:16]
        await release.wait()
        yield data[16:]

    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(url, content=body(), headers={"Content-Type": "image/jpeg"})


async def wait_for(check, timeout: float = 30.0) -> None:
    """Poll a blocking check from a thread until it is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the server")
        await asyncio.sleep(0.05)


def sixteen_bit_png(side: int = 9400, seed: int = 0) -> bytes:
    """A 16-bit grey PNG of side x side, under the pixel limit: mostly one value, so it compresses to about 200 KB."""
    wide = np.full((side, side), 30000, np.uint16)
    grid = wide[::181, ::173]
    wide[::181, ::173] = np.random.default_rng(seed).integers(0, 65535, size=grid.shape, dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def big_png() -> bytes:
    """A ~200 KB PNG that takes seconds and hundreds of MB to decode: a heavy client's upload."""
    return sixteen_bit_png()


def png_header(width: int, height: int, bit_depth: int, color_type: int) -> bytes:
    """A PNG that declares a size and pixel format in its header and holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) \
        + chunk(b"IEND", b"")


def rss_bytes(pid: int) -> int:
    """A process's resident memory now, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")
