"""The inference core without HTTP: shutdown with a batch in flight, one description per model."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from edgelite.errors import RequestError
from edgelite.runtime import load
from edgelite.runtime.describe import describe, describe_model
from edgelite.serve import ServeOptions
from edgelite.serve import core as core_module
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


def test_a_small_decode_goes_ahead_of_a_waiting_large_one():
    from edgelite.serve.admission import DecodeBudget

    async def scenario():
        budget, order = DecodeBudget(100), []

        async def decode(name: str, cost: int, hold: asyncio.Event) -> None:
            async with budget.hold(cost):
                order.append(name)
                await hold.wait()

        first, done = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(decode("large-1", 80, first))]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(decode("large-2", 80, done)))
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(decode("small", 10, done)))
        tasks.append(asyncio.create_task(decode("huge", 10_000, done)))  # larger than the budget: runs alone
        await asyncio.sleep(0.01)
        assert order == ["large-1", "small"] and budget.used == 90
        first.set()
        await asyncio.sleep(0.01)
        assert order == ["large-1", "small", "large-2"] and budget.used == 90
        done.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return order, budget.used

    order, used = asyncio.run(scenario())
    assert order == ["large-1", "small", "large-2", "huge"] and used == 0


def test_a_cancelled_wait_gives_nothing_back_twice():
    from edgelite.serve.admission import DecodeBudget

    async def scenario():
        budget, release = DecodeBudget(100), asyncio.Event()

        async def decode(cost: int) -> None:
            async with budget.hold(cost):
                await release.wait()

        holder = asyncio.create_task(decode(100))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(decode(50))
        await asyncio.sleep(0)
        waiter.cancel()
        release.set()
        await asyncio.gather(holder, waiter, return_exceptions=True)
        return budget.used

    assert asyncio.run(scenario()) == 0


def test_each_model_runs_one_test_inference_at_start(artifacts, monkeypatch):
    from edgelite.runtime.model import Model
    from edgelite.serve.naming import load_models

    calls = []
    real_run = Model.run

    def counted(self, pixels):
        calls.append(len(pixels))
        return real_run(self, pixels)

    monkeypatch.setattr(Model, "run", counted)
    models = load_models([artifact(artifacts, "tflite", "int8")])

    async def start_and_stop():
        core = InferenceCore(models, ServeOptions())
        await core.start()
        await core.stop()

    asyncio.run(start_and_stop())
    assert calls == [1]


def test_a_decode_thread_takes_and_gives_budget_and_wakes_a_waiting_decode():
    from concurrent.futures import ThreadPoolExecutor

    from edgelite.serve.admission import DecodeBudget

    async def scenario():
        budget, loop = DecodeBudget(100), asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as pool:
            assert await loop.run_in_executor(pool, budget.try_take, 70)  # a decode that fits: no trip to the loop
            assert not await loop.run_in_executor(pool, budget.try_take, 40)  # 70 + 40 does not fit

            async def waiting() -> int:
                async with budget.hold(40):
                    return budget.used

            waiter = asyncio.create_task(waiting())
            await asyncio.sleep(0.01)
            assert not waiter.done() and budget.used == 70
            await loop.run_in_executor(pool, budget.give, 70)  # given back on the thread: the loop admits the waiter
            used_inside = await asyncio.wait_for(waiter, 5)
        return used_inside, budget.used

    assert asyncio.run(scenario()) == (40, 0)


@pytest.mark.parametrize("instances", [1, 2])
def test_instances_run_that_many_batches_at_once_and_stop_lets_them_finish(artifacts, monkeypatch, instances):
    model = load(artifact(artifacts, "tflite", "int8"), threads=1)
    meeting = threading.Barrier(2, timeout=3)  # passed only when two batches are in inference at the same time
    real_scores = core_module._scores

    def scores_when_two_meet(model, pixels):
        meeting.wait()
        return real_scores(model, pixels)

    monkeypatch.setattr(core_module, "_scores", scores_when_two_meet)

    async def scenario():
        core = InferenceCore([model], ServeOptions(instances=instances, max_batch=1, max_delay_ms=0))
        await core.start()
        model_core = core.get()
        pixels = np.full((1, model.height, model.width, 3), 100.0, np.float32)
        jobs = [asyncio.create_task(model_core.infer(pixels)) for _ in range(2)]
        while model_core._running_jobs < min(2, instances) or len(model_core._waiting) != 2 - min(2, instances):
            await asyncio.sleep(0)
        running = model_core._running_jobs
        if instances == 2:
            await core.stop()  # both batches are inside the barrier: stop must wait for both answers
        answers = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 30)
        if instances == 1:
            await core.stop()
        return running, answers

    running, answers = asyncio.run(scenario())
    assert running == instances
    if instances == 2:
        assert all(isinstance(answer, BatchResult) for answer in answers), answers
        assert [answer.batch_size for answer in answers] == [1, 1]
    else:  # one batch at a time: the first waits in vain for a second, and the barrier breaks
        assert all(isinstance(answer, threading.BrokenBarrierError) for answer in answers), answers
