"""The server's per-request hot path (issue 22): hand-offs, uint8 decoding, sorted batches, the JSON encoder."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgelite.runtime import load
from edgelite.serve import ServeOptions, create_app, http
from edgelite.serve.core import InferenceCore
from edgelite.serve.threads import in_thread
from tests.conftest import artifact
from tests.serve.conftest import jpeg_bytes
from tests.serve.test_app import serving


def test_in_thread_gives_results_and_exceptions_and_skips_work_cancelled_before_it_ran():
    ran: list[str] = []
    gate = threading.Event()

    def blocker() -> str:
        gate.wait(10)
        return "blocker"

    def record(name: str) -> str:
        ran.append(name)
        return name

    def fail() -> None:
        raise ValueError("bad pixels")

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            first = in_thread(pool, blocker)
            cancelled = in_thread(pool, record, "cancelled")  # queued behind the blocker
            cancelled.cancel()
            gate.set()
            assert await first == "blocker"
            assert await in_thread(pool, record, "after") == "after"
            with pytest.raises(ValueError, match="bad pixels"):
                await in_thread(pool, fail)

    asyncio.run(scenario())
    assert ran == ["after"]


def test_uploads_decode_to_uint8_and_a_batch_comes_back_with_its_classes_sorted(artifacts):
    model = load(artifact(artifacts, "tflite", "int8"))

    async def scenario():
        core = InferenceCore([model], ServeOptions(max_batch=4, max_delay_ms=0))
        await core.start()
        try:
            model_core = core.get()
            prepared, _ = await model_core.decode(jpeg_bytes("blue"))
            floats = np.full((1, model.height, model.width, 3), 30.0, np.float32)
            results = await asyncio.gather(model_core.infer(prepared.pixels[None]), model_core.infer(floats))
            return prepared, results
        finally:
            await core.stop()

    prepared, results = asyncio.run(scenario())
    assert prepared.pixels.dtype == np.uint8
    for result, pixels in zip(results, (prepared.pixels[None], np.full_like(prepared.pixels[None], 30))):
        np.testing.assert_allclose(result.scores, model.class_scores(model.run(pixels)), atol=1e-6)
        np.testing.assert_array_equal(result.order, np.argsort(-result.scores, axis=1, kind="stable"))


@pytest.mark.parametrize("encoder", ["orjson", "json"])
def test_the_answer_json_is_what_the_standard_encoder_writes(monkeypatch, encoder):
    if encoder == "json":
        monkeypatch.setattr(http, "orjson", None)
    else:
        pytest.importorskip("orjson")
    document = {"model": "m", "predictions": [{"label": "é", "score": 0.123457}, {"label": "b", "score": 1e-06}],
                "notes": [], "timing_ms": {"read": 0.05, "total": 12.5}}
    body = http.JSONAnswer(document).body
    assert json.loads(body) == document
    if encoder == "json":
        assert body == json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def test_non_finite_scores_are_a_500_whichever_encoder(artifacts, caplog):
    model = load(artifact(artifacts, "tflite", "int8"))
    app = create_app({"colors": model}, ServeOptions(max_delay_ms=0))
    real = model.class_scores

    def nan_scores(raw):
        scores = real(raw).copy()
        scores[:, 0] = np.nan
        return scores

    with serving(app) as client, caplog.at_level(logging.ERROR, logger="edgelite.serve"):
        model.class_scores = nan_scores  # NaN sorts last: with top_k 3 it is in the answer
        answer = client.post("/predict?top_k=3", content=jpeg_bytes("red"), headers={"Content-Type": "image/jpeg"})
        assert answer.status_code == 500, answer.text
        assert "non-finite scores" in caplog.text
        del model.class_scores
        again = client.post("/predict", content=jpeg_bytes("red"), headers={"Content-Type": "image/jpeg"})
        assert again.status_code == 200 and again.json()["predictions"][0]["label"] == "red"
