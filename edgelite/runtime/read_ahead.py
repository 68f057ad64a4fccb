"""Read ahead in a bounded thread pool, in input order: the pipeline under `Model.predict_iter`.

Pillow releases the GIL while it decodes and resizes, so a few threads decode
the next images while the interpreter runs the current batch.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def read_ahead(work: Callable[[Item], Result], items: Iterable[Item], workers: int,
               depth: int) -> Iterator[tuple[Item, Result]]:
    """Yield (item, work(item)) in input order, with at most `depth` items submitted ahead.

    `items` is consumed lazily, so it may be endless (lines of stdin). An
    exception raised by `work` comes out of this iterator at its item: `work`
    should return expected failures as values.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgelite-decode")
    pending: deque[tuple[Item, Future]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= depth:
                break
        while pending:
            item, future = pending.popleft()
            for following in source:  # one in, one out: the window stays `depth` wide
                pending.append((following, pool.submit(work, following)))
                break
            yield item, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def chunks(pairs: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    chunk: list[Item] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
