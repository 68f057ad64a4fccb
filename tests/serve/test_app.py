"""create_app in-process (uvicorn on a thread): a 500 names its request id, batching, options."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Iterator

import httpx
import pytest
import uvicorn

from edgelite.errors import OptionError
from edgelite.runtime import load
from edgelite.serve import ServeOptions, create_app
from tests.conftest import artifact
from tests.serve.conftest import HOST, free_port, held_upload, jpeg_bytes, wait_for


@contextlib.contextmanager
def serving(app) -> Iterator[httpx.Client]:
    """Run an app with uvicorn on a thread of this process; a client for it."""
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the in-process server did not start"
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://{HOST}:{server.config.port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(60)


def test_an_unexpected_error_is_a_500_with_the_request_id_in_the_log(artifacts, caplog):
    model = load(artifact(artifacts, "tflite", "int8"))
    app = create_app({"colors": model}, ServeOptions(max_delay_ms=0))
    data = jpeg_bytes("red")

    def broken(pixels):
        raise RuntimeError("the interpreter fell over")

    with serving(app) as client, caplog.at_level(logging.ERROR, logger="edgelite.serve"):
        model.run = broken  # the instance attribute hides the method for this model only
        answer = client.post("/predict", content=data, headers={"Content-Type": "image/jpeg"})
        assert answer.status_code == 500
        request_id = answer.json()["request_id"]
        assert answer.headers["x-request-id"] == request_id
        assert answer.json()["error"] == f"internal error; the server log has the details under request id {request_id}"
        assert any(request_id in r.getMessage() and r.exc_info and "fell over" in str(r.exc_info[1])
                   for r in caplog.records)
        del model.run
        again = client.post("/predict", content=data, headers={"Content-Type": "image/jpeg"})
        assert again.status_code == 200 and again.json()["predictions"][0]["label"] == "red"
        metrics = client.get("/metrics").text
        assert 'edgelite_request_errors_total{reason="internal",route="/predict"} 1.0' in metrics


def test_requests_held_together_run_as_one_batch_and_a_lone_one_does_not_wait(artifacts):
    model = load(artifact(artifacts, "onnx", "int8"))
    name = model.path.stem
    app = create_app([model], ServeOptions(max_batch=4, max_delay_ms=60_000))
    data = jpeg_bytes("green")

    def metric(client, series: str) -> str:
        return next(line for line in client.get("/metrics").text.splitlines() if line.startswith(series))

    with serving(app) as client:
        url = str(client.base_url).rstrip("/") + "/predict"

        async def four_at_once():
            release = asyncio.Event()
            uploads = [asyncio.create_task(held_upload(url, data, release)) for _ in range(4)]
            await wait_for(lambda: metric(client, f'edgelite_bodies_reading{{model="{name}"}}').endswith(" 4.0"))
            release.set()
            return await asyncio.gather(*uploads)

        answers = asyncio.run(four_at_once())
        assert [a.status_code for a in answers] == [200] * 4
        assert all(a.json()["predictions"][0]["label"] == "green" for a in answers)
        # All four were being read before any was decoded, and the batcher waits for bodies being read:
        # one inference call ran them.
        assert metric(client, f'edgelite_batch_size_count{{model="{name}"}}').endswith(" 1.0")
        assert metric(client, f'edgelite_batch_size_sum{{model="{name}"}}').endswith(" 4.0")
        # Alone, a request does not wait out the (one minute) delay for company.
        alone = client.post("/predict", content=data, headers={"Content-Type": "image/jpeg"})
        assert alone.status_code == 200 and alone.json()["timing_ms"]["queue"] < 30_000
        assert metric(client, f'edgelite_batch_size_count{{model="{name}"}}').endswith(" 2.0")


@pytest.mark.parametrize("options, message", [
    ({"max_batch": 0}, "max_batch must be a whole number of at least 1, got 0"),
    ({"max_queue": 0}, "max_queue must be a whole number of at least 1, got 0"),
    ({"max_delay_ms": -1}, "max_delay_ms must be 0 or more, got -1"),
    ({"max_upload_mb": 0}, "max_upload_mb must be more than 0, got 0"),
    ({"threads": 0}, "threads must be a whole number of at least 1, got 0"),
    ({"instances": 0}, "instances must be a whole number of at least 1, got 0"),
    ({"body_timeout_s": 0}, "body_timeout_s must be more than 0, got 0"),
    ({"max_readers": 0}, "max_readers must be a whole number of at least 1, got 0"),
    ({"decode_budget_mb": -1}, "decode_budget_mb must be more than 0, got -1"),
])
def test_options_are_checked(options, message):
    with pytest.raises(OptionError, match=message):
        ServeOptions(**options)


def test_unknown_options_are_rejected():
    with pytest.raises(TypeError, match="max_batches"):
        ServeOptions(max_batches=3)


def test_models_need_unique_names(artifacts):
    model = load(artifact(artifacts, "tflite", "int8"))
    with pytest.raises(OptionError, match="two models are named"):
        create_app([model, load(model.path)])
    with pytest.raises(OptionError, match="no model to serve"):
        create_app([])
