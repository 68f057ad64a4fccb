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
    should return expected failures as values. An exception raised by `items`
    itself comes out after every item read before it has been yielded.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgelite-decode")
    pending: deque[tuple[Item, Future]] = deque()
    source = iter(items)
    failure: list[Exception] = []

    def pull() -> bool:
        if failure:
            return False
        try:
            item = next(source)
        except StopIteration:
            return False
        except Exception as exc:  # the caller's iterable broke: what it gave before is still answered
            failure.append(exc)
            return False
        pending.append((item, pool.submit(work, item)))
        return True

    try:
        while len(pending) < depth and pull():
            pass
        while pending:
            item, future = pending.popleft()
            pull()  # one in, one out: the window stays `depth` wide
            yield item, future.result()
        if failure:
            raise failure[0]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def chunks(pairs: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of `size` items (the last may be shorter).

    When `pairs` raises, the items gathered so far come out as a last chunk first.
    """
    chunk: list[Item] = []
    try:
        for pair in pairs:
            chunk.append(pair)
            if len(chunk) == size:
                yield chunk
                chunk = []
    except Exception:
        if chunk:
            yield chunk
        raise
    if chunk:
        yield chunk
