"""Operations on real server processes: metrics, the access log, a full queue, SIGTERM drain, hot reload."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal

import httpx
import pytest

from tests.conftest import artifact
from tests.serve.conftest import Server, held_upload, jpeg_bytes, wait_for


def test_metrics_and_one_access_line_per_request(served, int8_name):
    answer = httpx.post(f"{served.url}/predict", content=jpeg_bytes(), headers={"Content-Type": "image/jpeg"})
    bad = httpx.post(f"{served.url}/predict", content=b"nope", headers={"Content-Type": "image/png"})
    assert (answer.status_code, bad.status_code) == (200, 400)
    text = httpx.get(f"{served.url}/metrics").text
    for series in ('edgelite_requests_total{method="POST",route="/predict",status="200"}',
                   'edgelite_request_errors_total{reason="bad_image",route="/predict"}',
                   'edgelite_request_duration_seconds_bucket{le="0.1",route="/predict"}',
                   f'edgelite_batch_size_bucket{{le="1.0",model="{int8_name}"}}',
                   f'edgelite_queue_depth{{model="{int8_name}"}} 0.0',
                   'edgelite_limit{name="max_queue"} 64.0'):
        assert series in text, series
    for response, status in ((answer, 200), (bad, 400)):
        request_id = response.headers["x-request-id"]
        served.wait_log(request_id)
        lines = [line for line in served.log().splitlines() if f"id={request_id}" in line]
        assert len(lines) == 1
        assert re.search(rf'127\.0\.0\.1:\d+ "POST /predict HTTP/1\.1" {status} [\d.]+ms id={request_id} '
                         rf'model={int8_name}', lines[0]), lines[0]


def test_a_full_queue_answers_503_with_retry_after(artifacts, tmp_path, big_png):
    model = artifact(artifacts, "tflite", "int8")
    server = Server([model], tmp_path, "--max-queue", "1", "--max-batch", "1")
    url = f"{server.url}/predict"
    data = jpeg_bytes()

    async def scenario():
        async with httpx.AsyncClient(timeout=60) as client:
            # A body that is in holds a place while it decodes (a huge PNG: seconds); a body arriving holds none.
            held = asyncio.create_task(client.post(url, content=big_png, headers={"Content-Type": "image/png"}))
            await wait_for(lambda: server.metric("edgelite_queue_depth", model=model.stem) == 1)
            burst = await asyncio.gather(*(client.post(url, content=data, headers={"Content-Type": "image/jpeg"})
                                           for _ in range(8)))
            return await held, burst

    try:
        first, burst = asyncio.run(scenario())
        assert first.status_code == 200, first.text
        for answer in burst:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["error"] == (f"model '{model.stem}' is full: it holds 1 of 1 requests "
                                              "(--max-queue); retry in 1 s")
        assert server.metric("edgelite_request_errors_total", reason="queue_full", route="/predict") == 8
        after = httpx.post(url, content=data, headers={"Content-Type": "image/jpeg"})
        assert after.status_code == 200
    finally:
        assert server.stop() == 0, server.log()


def test_concurrent_requests_beyond_the_queue_are_refused_not_queued(artifacts, tmp_path):
    server = Server([artifact(artifacts, "onnx", "int8")], tmp_path, "--max-queue", "2", "--max-batch", "1")
    data = jpeg_bytes("blue")

    async def burst():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{server.url}/predict", content=data,
                                                      headers={"Content-Type": "image/jpeg"}) for _ in range(24)))

    try:
        answers = asyncio.run(burst())
        statuses = {answer.status_code for answer in answers}
        assert statuses <= {200, 503}
        assert 200 in statuses
        for answer in answers:
            if answer.status_code == 200:
                assert answer.json()["predictions"][0]["label"] == "blue"
            else:
                assert answer.headers["retry-after"] == "1"
        assert server.metric("edgelite_queue_depth", model=artifact(artifacts, "onnx", "int8").stem) == 0
    finally:
        assert server.stop() == 0, server.log()


def test_sigterm_finishes_the_request_in_flight_then_exits_0(artifacts, tmp_path):
    model = artifact(artifacts, "tflite", "int8")
    server = Server([model], tmp_path)

    async def scenario():
        release = asyncio.Event()
        held = asyncio.create_task(held_upload(f"{server.url}/predict", jpeg_bytes("red"), release))
        await wait_for(lambda: server.metric("edgelite_bodies_reading", model=model.stem) == 1)
        server.process.send_signal(signal.SIGTERM)
        await wait_for(lambda: "Shutting down" in server.log())
        assert server.process.poll() is None  # still draining: the request holds it
        release.set()
        return await held

    try:
        answer = asyncio.run(scenario())
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["label"] == "red"
        assert server.process.wait(60) == 0, server.log()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/v2/health/live")
    finally:
        server.stop()


def test_reload_swaps_a_good_file_and_keeps_the_old_model_for_a_bad_one(artifacts, tmp_path):
    served_file = tmp_path / "colors.tflite"
    shutil.copyfile(artifact(artifacts, "tflite", "int8"), served_file)
    server = Server([served_file], tmp_path, "--reload-on-change")
    url = f"{server.url}/v2/models/colors"

    def replace(source) -> None:
        temp = tmp_path / "incoming.tmp"
        if isinstance(source, bytes):
            temp.write_bytes(source)
        else:
            shutil.copyfile(source, temp)
        os.replace(temp, served_file)

    def predicts_red() -> bool:
        answer = httpx.post(f"{server.url}/predict", content=jpeg_bytes("red"), headers={"Content-Type": "image/jpeg"})
        return answer.status_code == 200 and answer.json()["predictions"][0]["label"] == "red"

    try:
        assert httpx.get(url).json()["edgelite"]["precision"] == "int8"
        replace(b"TFL3 this is not a model" * 100)
        server.wait_metric("edgelite_model_reloads_total", 1, model="colors", result="kept_old")
        assert "still serving the previous version" in server.log()
        assert httpx.get(url).json()["edgelite"]["precision"] == "int8"
        assert predicts_red()

        replace(artifact(artifacts, "tflite", "float32"))
        server.wait_metric("edgelite_model_reloads_total", 1, model="colors", result="swapped")
        assert httpx.get(url).json()["edgelite"]["precision"] == "float32"
        assert predicts_red()
        assert server.metric("edgelite_model_reloads_total", model="colors", result="kept_old") == 1
    finally:
        assert server.stop() == 0, server.log()
