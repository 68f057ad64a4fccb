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
    runs alone.
    """

    def __init__(self, total: int, on_change: Callable[[int], None] = lambda used: None):
        self.total = total
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()
        self._on_change = on_change

    @contextlib.asynccontextmanager
    async def hold(self, cost: int) -> AsyncIterator[None]:
        """Hold `cost` bytes of the budget for the duration of the block, waiting until they fit."""
        cost = min(max(cost, 1), self.total)
        if self.used + cost <= self.total:
            self._take(cost)
        else:
            granted = asyncio.get_running_loop().create_future()
            self._waiting.append((cost, granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():  # granted just as the request was cancelled
                    self._give(cost)
                raise
        try:
            yield
        finally:
            self._give(cost)

    def _take(self, cost: int) -> None:
        self.used += cost
        self._on_change(self.used)

    def _give(self, cost: int) -> None:
        self.used -= cost
        self._on_change(self.used)
        for entry in list(self._waiting):
            waiting_cost, granted = entry
            if granted.done():
                self._waiting.remove(entry)
            elif self.used + waiting_cost <= self.total:
                self._waiting.remove(entry)
                self._take(waiting_cost)
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
