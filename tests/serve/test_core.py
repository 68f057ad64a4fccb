"""The inference core without HTTP: shutdown with a batch in flight, one description per model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from edgelite.errors import RequestError
from edgelite.runtime import load
from edgelite.runtime.describe import describe, describe_model
from edgelite.serve import ServeOptions
from edgelite.serve.core import BatchResult, InferenceCore
from tests.conftest import artifact


def test_stop_answers_the_batch_in_flight_and_503s_the_rest(artifacts):
    model = load(artifact(artifacts, "tflite", "int8"))

    async def scenario():
        core = InferenceCore([model], ServeOptions(max_batch=2, max_delay_ms=0))
        await core.start()
        model_core = core.get()
        pixels = np.full((1, model.height, model.width, 3), 100.0, np.float32)
        jobs = [asyncio.create_task(model_core.infer(pixels)) for _ in range(4)]
        while len(model_core._waiting) != 2:  # the batcher has taken the first two: they are in inference now
            await asyncio.sleep(0)
        await core.stop()
        answers = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 30)
        with pytest.raises(RequestError) as late:
            await model_core.infer(pixels)
        return answers, late.value

    answers, late = asyncio.run(scenario())
    assert all(isinstance(answer, BatchResult) for answer in answers[:2]), answers
    for refused in (*answers[2:], late):
        assert isinstance(refused, RequestError), refused
        assert (refused.status, refused.reason) == (503, "shutting_down")
        assert str(refused) == "the service is shutting down; retry on another instance"


def test_one_description_in_three_shapes(artifacts):
    path = artifact(artifacts, "tflite", "int8")
    model = load(path)
    description = describe_model(model)
    assert description.info() == describe(path)
    served = description.served()
    assert served["file"] == path.name and served["precision"] == "int8"
    assert served["labels"] == ["blue", "green", "red"] and served["input_height"] == 32
    assert description.brief() == {"model": path.stem, "labels": ["blue", "green", "red"],
                                   "input_height": 32, "input_width": 32}
    core = InferenceCore([model], ServeOptions())
    assert core.get().describe() == {"name": path.stem, **served}
