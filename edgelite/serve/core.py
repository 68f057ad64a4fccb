"""The one inference core under every protocol: admission, decoding, dynamic batching, hot swap.

Each served model has a `ModelCore`: a bounded count of requests it holds
(one more is refused with 503), a batcher that runs the requests arriving
within `max_delay_ms` as one call of up to `max_batch` images on one of the
model's `instances` inference threads (each with its own LiteRT interpreter,
or all on the shared onnxruntime session), and the model itself, which `swap`
replaces for the batches that start after it.
Images are decoded on a thread pool shared by all models, never on the event
loop, each under its share of a decoded-bytes budget (see `admission`).
Protocol modules (`predict_api`, `v2`) only turn requests into pixels and
results into answers.

On shutdown the batcher finishes the batches it is running; requests still
waiting, and any that arrive after, get 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Optional, Sequence, TypeVar, Union

import numpy as np

from edgelite.errors import ImageError, ModelFileError, OptionError, RequestError
from edgelite.runtime import Model, PreparedImage
from edgelite.runtime.describe import describe_model
from edgelite.serve.admission import DecodeBudget, Readers, give_back_memory
from edgelite.serve.metrics import Metrics
from edgelite.serve.naming import model_names
from edgelite.serve.threads import in_thread, wait_at_most
from edgelite.serve.options import ServeOptions

log = logging.getLogger("edgelite.serve")
T = TypeVar("T")


@dataclass(frozen=True)
class BatchResult:
    """What one request gets back from a batch: its rows of class scores and how they were made."""

    scores: np.ndarray
    model: Model
    batch_size: int
    queue_ms: float
    inference_ms: float
    order: Optional[np.ndarray] = None  # each row's classes, best first (sorted on the inference thread)


@dataclass
class _Job:
    pixels: np.ndarray  # (n, H, W, 3) raw 0-255 float32
    model: Model
    future: asyncio.Future
    enqueued: float


def check_model(model: Model) -> np.ndarray:
    """Run one grey image through a model; raise ModelFileError unless it gives one finite score per label."""
    grey = np.full((1, model.height, model.width, 3), 128.0, dtype=np.float32)
    scores = model.class_scores(model.run(grey))
    if scores.shape != (1, len(model.labels)) or not np.all(np.isfinite(scores)):
        raise ModelFileError(f"{model.path.name}: a test prediction gave scores of shape {scores.shape} "
                             f"with values {scores.ravel()[:4]}..., expected {len(model.labels)} finite scores")
    return scores


class _Count:
    """A count of requests in some state, read by its metrics gauge when /metrics is scraped (nothing per request)."""

    def __init__(self, gauge):
        self.value = 0
        gauge.set_function(lambda: self.value)

    @contextlib.contextmanager
    def one(self) -> Iterator[None]:
        """Count one more for the duration of the block."""
        self.value += 1
        try:
            yield
        finally:
            self.value -= 1


class ModelCore:
    """One served model: its admission count, its batcher and its inference thread."""

    def __init__(self, name: str, model: Model, options: ServeOptions, decode_pool: ThreadPoolExecutor,
                 metrics: Metrics, readers: Readers, budget: DecodeBudget):
        self.name = name
        self.model = model
        self.description = describe_model(model)
        self.options = options
        self.metrics = metrics
        self._decode_pool = decode_pool
        self._readers = readers
        self._budget = budget
        self._reading = _Count(metrics.reading.labels(model=name))
        self._closing = False
        self._infer_pool = ThreadPoolExecutor(options.instances, thread_name_prefix=f"edgelite-infer-{name}")
        self._waiting: deque[_Job] = deque()
        self._waiting_rows = 0
        self._running_jobs = 0  # requests in a batch that is running now
        self._arrived = asyncio.Event()
        self._held = _Count(metrics.queue_depth.labels(model=name))
        self._task: Optional[asyncio.Task] = None
        self._batch_sizes = metrics.batch_size.labels(model=name)
        self._inference_seconds = metrics.inference_seconds.labels(model=name)

    def describe(self) -> dict:
        """What a client needs to know about the served model, under its served name (both protocols show it)."""
        return {"name": self.name, **self.description.served()}

    # -- admission ----------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold one of the server's body readers while this request's body arrives (503 when none is free)."""
        self._check_open()
        with self._readers.hold(), self._reading.one():
            try:
                yield
            finally:
                self._arrived.set()  # a body that never came: a batch waiting for it need not wait any longer

    def _check_open(self) -> None:
        if self._closing:
            raise self._shutting_down()

    def _shutting_down(self) -> RequestError:
        return RequestError(503, "shutting_down", "the service is shutting down; retry on another instance",
                            {"Retry-After": str(self.options.retry_after_s), "Connection": "close"})

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the model's `max_queue` places for a request whose body is in, or refuse it with 503."""
        self._check_open()
        held = self._held.value
        if held >= self.options.max_queue:
            raise RequestError(503, "queue_full",
                               f"model {self.name!r} is full: it holds {held} of {self.options.max_queue} "
                               f"requests (--max-queue); retry in {self.options.retry_after_s} s",
                               {"Retry-After": str(self.options.retry_after_s)})
        with self._held.one():
            try:
                yield
            finally:
                self._arrived.set()  # a batch waiting for this request need not wait any longer

    @property
    def held(self) -> int:
        """Requests the model holds now."""
        return self._held.value

    # -- off the event loop -------------------------------------------------------
    async def in_decode_pool(self, function: Callable[..., T], *args) -> T:
        """Run CPU work (decoding, parsing tensors) on the shared decode threads."""
        return await in_thread(self._decode_pool, function, *args)

    async def decode(self, data: Union[bytes, np.ndarray], what: str = "the upload",
                     model: Optional[Model] = None) -> tuple[PreparedImage, Model]:
        """Decode and resize one image for a model (the current one by default); a bad image is a 400."""
        model = model or self.model
        try:
            if isinstance(data, np.ndarray):
                prepared = await self.in_decode_pool(model.prepare, data)
            else:
                prepared = await self._decode_in_budget(model, data)
        except ImageError as exc:
            message = str(exc).replace("image bytes: ", f"{what}: ", 1)
            raise RequestError(400, exc.reason, message) from None
        prepared.notes = [note.replace("image bytes: ", f"{what}: ", 1) for note in prepared.notes]
        return prepared, model

    async def _decode_in_budget(self, model: Model, data: bytes) -> PreparedImage:
        # One trip to a decode thread when the image fits the budget at once (the usual case); else the
        # header's size waits for room on the loop, with no thread held, and a second trip decodes.
        prepared_or_size = await self.in_decode_pool(self._decode_if_room, model, data)
        if isinstance(prepared_or_size, PreparedImage):
            return prepared_or_size
        async with self._budget.hold(2 * prepared_or_size):
            return await self.in_decode_pool(self._decode_held, model, data, prepared_or_size)

    def _decode_if_room(self, model: Model, data: bytes) -> Union[PreparedImage, int]:
        """On a decode thread: the decoded image if the budget has room for it now, else its size in bytes.

        The header says what decoding will take: the decoded image and about as much again for its conversion.
        The image is opened once: its header is read, the budget asked, then the same image decoded.
        """
        taken: list[int] = []

        def admit(size: int) -> None:
            cost = self._budget.cost(2 * size)
            if not self._budget.try_take(cost):
                raise _NoRoom(size)
            taken.append(cost)
            taken.append(size)

        try:
            return model.prepare(data, as_uint8=True, on_header=admit)  # uint8: batched without a float copy
        except _NoRoom as no_room:
            return no_room.size
        finally:
            if taken:
                self._budget.give(taken[0])
                if taken[1] >= self.options.decode_budget_bytes // 8:
                    give_back_memory(taken[1])

    def _decode_held(self, model: Model, data: bytes, size: int) -> PreparedImage:
        try:
            return model.prepare(data, as_uint8=True)  # batched and fed to the model without a float32 copy
        finally:
            if size >= self.options.decode_budget_bytes // 8:
                give_back_memory(size)

    # -- batching ----------------------------------------------------------------
    async def infer(self, pixels: np.ndarray, model: Optional[Model] = None) -> BatchResult:
        """Class scores for (n, H, W, 3) raw pixels, run in a batch with other requests' images."""
        model = model or self.model
        self._check_open()
        if pixels.ndim != 4 or pixels.shape[1:] != (model.height, model.width, 3):
            raise OptionError(f"expected pixels of shape (n, {model.height}, {model.width}, 3), got {pixels.shape}")
        if not 1 <= len(pixels) <= self.options.max_batch:
            raise OptionError(f"expected 1 to {self.options.max_batch} images (--max-batch), got {len(pixels)}")
        loop = asyncio.get_running_loop()
        job = _Job(pixels, model, loop.create_future(), loop.time())
        self._waiting.append(job)
        self._waiting_rows += len(pixels)
        self._arrived.set()
        return await job.future

    async def start(self) -> None:
        """Start the batcher (`load` has already run the model once)."""
        self._task = asyncio.create_task(self._batch_loop(), name=f"edgelite-batcher-{self.name}")

    async def stop(self) -> None:
        """Let the batcher finish the batches it runs; requests still waiting, and any new one, get 503."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task
        while self._waiting:
            job = self._waiting.popleft()
            if not job.future.done():
                job.future.set_exception(self._shutting_down())
        self._waiting_rows = 0
        await asyncio.to_thread(self._infer_pool.shutdown, True)

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.options.max_delay_ms / 1000.0
        running: set[asyncio.Task] = set()
        try:
            while not self._closing:
                if len(running) >= self.options.instances:  # every inference thread is busy: wait for one
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if not self._waiting:
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                # The oldest request waits at most max_delay_ms for others, counted from its arrival, and only
                # while other requests for this model are still being read or decoded: alone, it runs at once.
                deadline = self._waiting[0].enqueued + delay
                while self._waiting_rows < self.options.max_batch and not self._closing \
                        and self._held.value + self._reading.value > len(self._waiting) + self._running_jobs:
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        break
                    self._arrived.clear()
                    if not await wait_at_most(self._arrived, timeout):
                        break
                if self._closing:
                    break
                batch = self._take()
                self._running_jobs += len(batch)  # counted from now on, not from when its task first runs
                task = loop.create_task(self._run(batch))
                running.add(task)
                task.add_done_callback(functools.partial(self._batch_done, running, len(batch)))
        finally:
            if running:  # the batches already running finish, even on shutdown
                await asyncio.wait(running)

    def _take(self) -> list[_Job]:
        """The oldest jobs for one model object, up to max_batch images (always at least one job)."""
        first = self._waiting.popleft()
        batch, rows = [first], len(first.pixels)
        while self._waiting and self._waiting[0].model is first.model \
                and rows + len(self._waiting[0].pixels) <= self.options.max_batch:
            job = self._waiting.popleft()
            batch.append(job)
            rows += len(job.pixels)
        self._waiting_rows -= rows
        return batch

    def _batch_done(self, running: set[asyncio.Task], jobs: int, task: asyncio.Task) -> None:
        running.discard(task)
        self._running_jobs -= jobs

    async def _run(self, batch: list[_Job]) -> None:
        try:
            await self._run_batch(batch)
        except Exception:  # a bug here must not stop the batcher: log it and serve the next batch
            log.exception("batcher of model %s failed", self.name)

    async def _run_batch(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        model = batch[0].model
        started = loop.time()
        try:
            scores, order = await in_thread(self._infer_pool, _scores, model, [job.pixels for job in batch])
        except Exception as exc:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        took = loop.time() - started
        self._batch_sizes.observe(len(scores))
        self._inference_seconds.observe(took)
        row = 0
        for job in batch:
            rows = slice(row, row + len(job.pixels))
            row += len(job.pixels)
            if not job.future.done():  # its client may have gone away
                job.future.set_result(BatchResult(scores[rows], model, len(scores),
                                                  (started - job.enqueued) * 1000.0, took * 1000.0, order[rows]))

    # -- hot swap -----------------------------------------------------------------
    async def swap(self, new: Model) -> None:
        """Check a new model on an inference thread, then serve it; raises if the check fails."""
        await asyncio.get_running_loop().run_in_executor(self._infer_pool, check_model, new)
        self.description = await asyncio.to_thread(describe_model, new)
        self.model = new  # jobs already queued keep their own reference to the old model until their batch has run
        log.info("model %s: now serving %s (%s, %s)", self.name, new.path, _precision(new), new.backend_name)


class _NoRoom(Exception):
    """The decode budget has no room now for an image of `size` decoded bytes."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def _joined(pixels: list[np.ndarray]) -> np.ndarray:
    """One batch of the jobs' pixels: uint8 when every job's are (decoded uploads), else float32."""
    if len(pixels) == 1:
        return pixels[0]
    dtype = np.uint8 if all(p.dtype == np.uint8 for p in pixels) else np.float32
    return np.concatenate(pixels, dtype=dtype)


def _scores(model: Model, pixels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """On the inference thread: the batch's class scores, and each row's classes best first.

    Joining the jobs' pixels and sorting the scores here keeps that work (and
    the GIL hand-offs numpy makes for it) off the event loop.
    """
    scores = model.class_scores(model.run(_joined(pixels)))
    return scores, np.argsort(-scores, axis=1, kind="stable")


def _precision(model: Model) -> str:
    return model.metadata.precision if model.metadata else "unknown precision"


class InferenceCore:
    """Every served model's `ModelCore`, the shared decode pool and the metrics."""

    def __init__(self, models: Union[Mapping[str, Model], Sequence[Model]], options: ServeOptions,
                 metrics: Optional[Metrics] = None):
        named = model_names(models)
        self.options = options
        self.metrics = metrics or Metrics(options)
        workers = options.decode_workers or min(4, os.cpu_count() or 1)
        self.decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="edgelite-decode")
        self.readers = Readers(options)
        self.budget = DecodeBudget(options.decode_budget_bytes)
        self.metrics.decode_bytes.set_function(lambda: self.budget.used)  # read at scrape time, not per image
        self.models = {name: ModelCore(name, model, options, self.decode_pool, self.metrics, self.readers,
                                       self.budget) for name, model in named.items()}
        self.default = next(iter(self.models))
        self.ready = False

    def get(self, name: Optional[str] = None) -> ModelCore:
        """The core of a model by name (the first model when None); 404 when there is no such model."""
        core = self.models.get(self.default if name is None else name)
        if core is None:
            raise RequestError(404, "unknown_model", f"no model named {name!r}; this server has "
                                                     + ", ".join(repr(n) for n in self.models))
        return core

    async def start(self) -> None:
        """Start the batchers."""
        for core in self.models.values():
            await core.start()
        self.ready = True

    async def stop(self) -> None:
        """Stop the batchers (each finishes its running batch) and the decode pool, without blocking the loop."""
        self.ready = False
        for core in self.models.values():
            await core.stop()
        await asyncio.to_thread(self.decode_pool.shutdown, True)
