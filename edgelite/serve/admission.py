"""What a request may hold before it holds a queue place: a body reader, and decoded-image memory.

A slow client holds a body reader (at most `max_readers` over all models,
for at most `body_timeout_s`), never one of a model's `max_queue` places. A
decode holds its share of `decode_budget_mb` while it runs: one that does not
fit waits, and smaller ones that fit go ahead of it, so a small image is never
stuck behind huge ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import threading
from collections import deque
from typing import AsyncIterator, Callable, Iterator, Optional

from edgelite.errors import RequestError
from edgelite.serve.options import ServeOptions

# Over this many decoded bytes, the memory the decode used is handed back to the OS afterwards.
TRIM_AFTER_BYTES = 32 * 1024 * 1024


class DecodeBudget:
    """A total of decoded bytes that decodes running at once may hold.

    Not first-come-first-served on purpose: a waiting decode is admitted as soon
    as it fits, whatever waits before it. A decode larger than the whole budget
    runs alone. `hold` waits on the event loop; `try_take` and `give` may also
    be called from a decode thread, so a decode that fits at once needs no trip
    back to the loop (one thread hand-off per image instead of two).
    """

    def __init__(self, total: int, on_change: Callable[[int], None] = lambda used: None):
        self.total = total
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()
        self._on_change = on_change
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    @contextlib.asynccontextmanager
    async def hold(self, cost: int) -> AsyncIterator[None]:
        """Hold `cost` bytes of the budget for the duration of the block, waiting until they fit."""
        self._loop = asyncio.get_running_loop()
        cost = self.cost(cost)
        if not self.try_take(cost):
            granted = self._loop.create_future()
            self._waiting.append((cost, granted))
            self._admit()  # a give from a decode thread may have made room since try_take
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():  # granted just as the request was cancelled
                    self.give(cost)
                raise
        try:
            yield
        finally:
            self.give(cost)

    def cost(self, size: int) -> int:
        """What a decode of `size` bytes holds: at least 1, at most the whole budget (then it runs alone)."""
        return min(max(size, 1), self.total)

    def try_take(self, cost: int) -> bool:
        """Take `cost` bytes if they fit now, without waiting (from any thread); False if they do not."""
        with self._lock:
            if self.used + cost > self.total:
                return False
            self.used += cost
            used = self.used
        self._on_change(used)
        return True

    def give(self, cost: int) -> None:
        """Give back `cost` bytes (from any thread) and admit the waiting decodes that now fit."""
        with self._lock:
            self.used -= cost
            used, waiting = self.used, bool(self._waiting)
        self._on_change(used)
        if waiting and self._loop is not None:
            try:
                if asyncio.get_running_loop() is self._loop:
                    self._admit()
                    return
            except RuntimeError:  # a decode thread: the waiting futures belong to the loop
                pass
            self._loop.call_soon_threadsafe(self._admit)

    def _admit(self) -> None:
        for entry in list(self._waiting):
            waiting_cost, granted = entry
            if granted.done():
                self._waiting.remove(entry)
            elif self.try_take(waiting_cost):
                self._waiting.remove(entry)
                granted.set_result(None)


class Readers:
    """The count of request bodies being read over all models, bounded by `max_readers`."""

    def __init__(self, options: ServeOptions):
        self.options = options
        self.count = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold one reader while a body is read, or refuse the request with 503 (and close its connection)."""
        if self.count >= self.options.max_readers:
            raise RequestError(503, "too_many_readers",
                               f"the server is already reading {self.count} request bodies, its limit "
                               f"(--max-readers); retry in {self.options.retry_after_s} s",
                               {"Retry-After": str(self.options.retry_after_s), "Connection": "close"})
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim") if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): freed memory is returned its own way
        return None


def give_back_memory(decoded: int) -> None:
    """After a large decode, return the freed heap to the OS (glibc keeps it otherwise; Pillow's 16 MB blocks
    come from the heap once glibc's mmap threshold has grown to their size)."""
    trim = _malloc_trim()
    if trim is not None and decoded >= TRIM_AFTER_BYTES:
        trim(0)
