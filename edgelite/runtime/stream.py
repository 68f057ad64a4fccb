"""Read ahead in a bounded thread pool, in input order: the pipeline under `Model.predict_iter`;
and the bounded reading of `predict -`'s stdin.

Pillow releases the GIL while it decodes and resizes, so a few threads decode
the next images while the interpreter runs the current batch.
"""

from __future__ import annotations

import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator, TypeVar, Union

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


# A stdin line past this is not a path (PATH_MAX is 4096): it is an error, and memory stays bounded.
MAX_LINE_BYTES = 16 * 1024
# How far past an over-long line stdin is skipped looking for the next line; beyond it, stdin is not a list.
MAX_SKIP_BYTES = 1 << 20
# An image piped into stdin is read whole, up to this size.
MAX_STDIN_IMAGE_BYTES = 100 << 20
_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class InputError:
    """An input item that is not even a source (a stdin line too long, not UTF-8).

    It travels through `predict_iter` in its place and comes out as that
    item's error result, so one bad line never ends the stream.
    """

    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


def looks_like_image(head: bytes) -> bool:
    """Whether the first bytes of a stream are a JPEG, PNG, GIF, BMP, WebP or TIFF signature.

    None of them can start a line of path text: each has a byte outside
    printable ASCII, or (BMP) NUL bytes at a fixed place.
    """
    return (head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or (head[:2] == b"BM" and head[6:10] == b"\x00\x00\x00\x00"))


def stdin_sources(stream: BinaryIO) -> Iterator[Union[str, bytes, InputError]]:
    """What `predict -` reads: the image itself when stdin holds one, else one path per line.

    Every read is bounded: an image up to MAX_STDIN_IMAGE_BYTES, a line up
    to MAX_LINE_BYTES. A line too long or not UTF-8 is an `InputError` for
    that line; the lines after it are read on. Blank lines are skipped.
    """
    head = stream.read(_SIGNATURE_BYTES)
    if looks_like_image(head):
        data = head + stream.read(MAX_STDIN_IMAGE_BYTES + 1 - len(head))
        if len(data) > MAX_STDIN_IMAGE_BYTES:
            yield InputError("stdin", f"the image is over {MAX_STDIN_IMAGE_BYTES >> 20} MB; save it to a file")
        else:
            yield data
        return
    yield from _lines(io.BufferedReader(_Prefixed(head, stream)))


def _lines(reader: io.BufferedReader) -> Iterator[Union[str, InputError]]:
    number = 0
    while True:
        line = reader.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        name = f"stdin line {number}"
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            if not _skip_line(reader):
                yield InputError(name, f"no line end in the first {MAX_SKIP_BYTES >> 20} MB; stdin is not a list "
                                       "of image paths (the rest of it was not read)")
                return
            yield InputError(name, f"longer than {MAX_LINE_BYTES:,} bytes; expected one image path per line")
            continue
        text = line.rstrip(b"\r\n")
        if not text.strip():
            continue
        try:
            yield text.decode("utf-8")
        except UnicodeDecodeError:
            yield InputError(name, "not UTF-8 text; expected one image path per line")


def _skip_line(reader: io.BufferedReader) -> bool:
    """Read past the rest of a line; False when no line end comes within MAX_SKIP_BYTES."""
    skipped = 0
    while skipped < MAX_SKIP_BYTES:
        part = reader.readline(MAX_LINE_BYTES)
        if not part or part.endswith(b"\n"):
            return True
        skipped += len(part)
    return False


class _Prefixed(io.RawIOBase):
    """A raw stream that gives `head` first, then the rest of `stream` (the bytes read to sniff it)."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count], self._head = self._head[:count], self._head[count:]
            return count
        read1 = getattr(self._stream, "read1", self._stream.read)
        data = read1(len(buffer))
        buffer[:len(data)] = data
        return len(data)
