"""Hand-offs between the event loop and worker threads, at one loop wake-up each."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


def in_thread(pool: ThreadPoolExecutor, function: Callable[..., T], *args) -> "asyncio.Future[T]":
    """Run `function(*args)` on `pool`; an asyncio future gets its result or exception.

    Like `run_in_executor`, with one hand-off back to the loop instead of a
    concurrent future chained to an asyncio one (wrap_future, two done
    callbacks and a state copy per call). Work whose future was cancelled
    before a thread took it up is skipped, as run_in_executor skips it.
    """
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def work() -> None:
        if future.cancelled():  # a plain read of its state; the loop owns the future
            return
        try:
            result = function(*args)
        except BaseException as exc:  # handed to the awaiting request, as run_in_executor hands it
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    pool.submit(work)
    return future


def _settle(future: asyncio.Future, result: object, exc: Optional[BaseException]) -> None:
    if future.done():  # cancelled while the thread ran: its request has gone
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


async def wait_at_most(event: asyncio.Event, seconds: float) -> bool:
    """Wait for `event` at most `seconds`; False on timeout (on 3.11+ without the task wait_for makes)."""
    try:
        if hasattr(asyncio, "timeout"):
            async with asyncio.timeout(seconds):
                await event.wait()
        else:
            await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True
