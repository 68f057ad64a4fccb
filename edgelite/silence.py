"""Silence native libraries that write to the process's file descriptors.

TensorFlow, tf2onnx and LiteRT print from C++ straight to fd 1 and 2, past
Python's `sys.stdout` and `sys.stderr`; only pointing the descriptors
elsewhere keeps the CLI's output clean. Used by the runtime and the heavy stages.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def silenced_fds(*fds: int) -> Iterator[None]:
    """Point file descriptors at /dev/null for the block, then restore them."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    saved = []
    try:
        for fd in fds:
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:  # no such descriptor: nothing to silence
                continue
        with open(os.devnull, "wb") as devnull:
            for fd, _ in saved:
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
