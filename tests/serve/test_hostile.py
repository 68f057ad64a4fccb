"""Slow and heavy clients against real server processes: stalled bodies, reader limit, decode budget, shutdown."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import httpx

from tests.conftest import artifact
from tests.serve.conftest import HOST, Server, jpeg_bytes, png_header, rss_bytes, wait_for

STALLED = 256


def stall(port: int, path: str = "/predict", sent: bytes = b"0123456789") -> socket.socket:
    """A connection that sends its headers and 10 bytes of a 1000-byte body, then nothing."""
    sock = socket.create_connection((HOST, port), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\n"
                 f"Content-Length: 1000\r\n\r\n".encode() + sent)
    return sock


def answer_and_close(sock: socket.socket) -> bytes:
    """Everything the server sends on a connection until it closes it."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_stalled_bodies_hold_no_queue_place_and_get_408(artifacts, tmp_path):
    model = artifact(artifacts, "tflite", "int8")
    server = Server([model], tmp_path, "--body-timeout", "4", "--max-queue", "64")
    stalled = []
    try:
        stalled = [stall(server.port) for _ in range(STALLED)]
        server.wait_metric("edgelite_bodies_reading", STALLED, model=model.stem)
        assert server.metric("edgelite_queue_depth", model=model.stem) == 0
        started = time.monotonic()
        good = httpx.post(f"{server.url}/predict", content=jpeg_bytes("red"), headers={"Content-Type": "image/jpeg"},
                          timeout=30)
        took = time.monotonic() - started
        assert good.status_code == 200, good.text
        assert good.json()["predictions"][0]["label"] == "red"
        assert took < 2.0, took
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200  # and it is: the request above
        answers = [answer_and_close(sock) for sock in stalled]  # each ends with the server closing it
        for answer in answers:
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), answer
            assert b"connection: close" in head.lower()
            assert b"the request body did not arrive within 4 s (--body-timeout)" in body
        assert server.metric("edgelite_request_errors_total", reason="body_timeout", route="/predict") == STALLED
        server.wait_metric("edgelite_bodies_reading", 0, model=model.stem)
    finally:
        for sock in stalled:
            sock.close()
        assert server.stop() == 0, server.log()


def test_bodies_beyond_the_reader_limit_get_503_at_once(artifacts, tmp_path):
    model = artifact(artifacts, "onnx", "int8")
    server = Server([model], tmp_path, "--max-readers", "4")
    stalled = []
    try:
        stalled = [stall(server.port, f"/models/{model.stem}/predict") for _ in range(4)]
        server.wait_metric("edgelite_bodies_reading", 4, model=model.stem)
        refused = httpx.post(f"{server.url}/predict", content=jpeg_bytes(), headers={"Content-Type": "image/jpeg"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1" and refused.headers["connection"] == "close"
        assert refused.json()["error"] == ("the server is already reading 4 request bodies, its limit "
                                           "(--max-readers); retry in 1 s")
        for sock in stalled:
            sock.close()
        server.wait_metric("edgelite_bodies_reading", 0, model=model.stem)
        again = httpx.post(f"{server.url}/predict", content=jpeg_bytes("blue"), headers={"Content-Type": "image/jpeg"})
        assert again.status_code == 200 and again.json()["predictions"][0]["label"] == "blue"
    finally:
        for sock in stalled:
            sock.close()
        assert server.stop() == 0, server.log()


def test_a_small_image_is_not_stuck_behind_huge_decodes_and_memory_comes_back(artifacts, tmp_path, big_png):
    model = artifact(artifacts, "tflite", "int8")
    server = Server([model], tmp_path, "--decode-workers", "2", "--max-upload-mb", "2")
    url = f"{server.url}/predict"
    idle = rss_bytes(server.process.pid)
    finished: list[str] = []

    async def send(client: httpx.AsyncClient, what: str, data: bytes, kind: str) -> httpx.Response:
        answer = await client.post(url, content=data, headers={"Content-Type": kind})
        finished.append(what)
        return answer

    async def scenario():
        async with httpx.AsyncClient(timeout=120) as client:
            huge = [asyncio.create_task(send(client, f"huge{i}", big_png, "image/png")) for i in range(3)]
            await wait_for(lambda: server.metric("edgelite_decode_bytes") > 0)
            small = await send(client, "small", jpeg_bytes("green"), "image/jpeg")
            return small, await asyncio.gather(*huge)

    try:
        small, huge = asyncio.run(scenario())
        assert small.status_code == 200 and small.json()["predictions"][0]["label"] == "green"
        assert [answer.status_code for answer in huge] == [200] * 3, [answer.text for answer in huge]
        assert huge[0].json()["notes"] == ["the upload: 16-bit grayscale scaled to 8-bit RGB"]
        # Two decode threads, and one huge decode fits the budget at a time: a thread was free for the JPEG.
        assert finished[0] == "small", finished
        server.wait_metric("edgelite_decode_bytes", 0)
        # 8-bit conversion in strips and malloc_trim after: the ~0.5 GB a huge decode took is given back.
        assert rss_bytes(server.process.pid) < idle + 150 * 1024 * 1024, (idle, rss_bytes(server.process.pid))
    finally:
        assert server.stop() == 0, server.log()


def test_an_image_over_the_decoded_bytes_limit_is_a_400(served):
    answer = httpx.post(f"{served.url}/predict", content=png_header(9000, 9000, 8, 6),
                        headers={"Content-Type": "image/png"})
    assert answer.status_code == 400
    assert answer.json()["error"] == ("the upload: 9000x9000 RGBA decodes to 324 MB, over the 268 MB limit per "
                                      "image; resize it or save it as 8-bit RGB")
    assert served.metric("edgelite_request_errors_total", reason="decoded_too_large", route="/predict") >= 1


def test_shutdown_answers_every_request_200_or_503(artifacts, tmp_path):
    """SIGTERM with batches of 2,048 images in inference and bodies still arriving: none 500, none hanging."""
    import numpy as np

    model = artifact(artifacts, "tflite", "int8")
    server = Server([model], tmp_path, "--max-batch", "2048", "--max-upload-mb", "16", "--drain-timeout", "1")
    pixels = np.random.default_rng(0).integers(0, 256, (2048, 32, 32, 3), dtype=np.uint8).tobytes()
    header = (b'{"inputs":[{"name":"pixels","shape":[2048,32,32,3],"datatype":"UINT8",'
              b'"parameters":{"binary_data_size":%d}}]}' % len(pixels))

    async def scenario():
        async with httpx.AsyncClient(timeout=60) as client:
            batches = [asyncio.create_task(client.post(
                f"{server.url}/v2/models/{model.stem}/infer", content=header + pixels,
                headers={"Content-Type": "application/octet-stream",
                         "Inference-Header-Content-Length": str(len(header))})) for _ in range(2)]
            await wait_for(lambda: server.metric("edgelite_queue_depth", model=model.stem) >= 1)
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.wait_for(asyncio.gather(*batches), 60)

    stalled = []
    try:
        # Bodies still arriving when the drain time runs out (raw sockets: they read while they send nothing)
        stalled = [stall(server.port) for _ in range(3)]
        server.wait_metric("edgelite_bodies_reading", 3, model=model.stem)
        batches = asyncio.run(scenario())
        for answer in batches:  # the first batch runs within the drain; the second may be cut by it
            assert answer.status_code in (200, 503), (answer.status_code, answer.text)
        for sock in stalled:
            head, _, body = answer_and_close(sock).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 "), head
            assert b"the service is shutting down; retry on another instance" in body
        assert server.process.wait(60) == 0, server.log()
        assert "Exception in ASGI application" not in server.log()
    finally:
        for sock in stalled:
            sock.close()
        server.stop()
