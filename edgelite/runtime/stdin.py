"""The bounded reading of `predict -`'s stdin: one piped image, or one path per line.

Every read has a bound, so a stream that is neither (`/dev/zero`, a binary
file) costs one error result, never the memory it would take to hold it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

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
