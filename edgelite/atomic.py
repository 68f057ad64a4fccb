"""Atomic file writes: a temp file beside the target, then a rename."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path in the target's folder; rename it over `path` only on success."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temp)
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def write_bytes_atomic(path: Path, content: bytes) -> None:
    """Write `content` to `path` so that readers see the old file or the whole new one."""
    with atomic_path(path) as temp:
        temp.write_bytes(content)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
