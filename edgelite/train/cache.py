"""The decoded-image cache (`--cache DIR`): uint8 pixels in memory-mapped .npy files.

One entry holds one split of a dataset at one input size, resize filter and
decode mode. Its name carries a fingerprint of the split's file list (paths,
sizes and modification times), so an entry is used only while every file is
as it was: when a file changes, the next run gets a new entry and the stale one
is deleted; another size or filter gets an entry of its own (a sweep over sizes
keeps one per size). Rows are filled as images are first decoded, so a second
epoch, a sweep variant or a later run reads them back instead of decoding.

Several processes may share an entry (workers on one machine): each writes only
the rows of its own shard, and an entry is created under its final name with an
atomic hard link, so the first worker's file is the one everybody opens.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edgelite.errors import DatasetError
from edgelite.modes import Decode, Interpolation

CACHE_FORMAT = 1


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def cache_name(paths: Sequence[Path], size: int, interpolation: Interpolation, decode: Decode) -> tuple[str, str]:
    """(the name prefix shared by every version of this split's entry, the full entry name).

    Raises:
        DatasetError: a file of the list cannot be stat'ed (it vanished since the scan).
    """
    listed = [str(Path(p).absolute()) for p in paths]
    try:
        stats = [(info.st_size, info.st_mtime_ns) for info in map(os.stat, listed)]
    except OSError as exc:
        raise DatasetError(f"{exc.filename}: changed while the dataset was read ({exc.strerror})") from None
    prefix = f"{_digest([CACHE_FORMAT, listed])}-{size}px-{interpolation}-{decode}"
    return prefix, f"{prefix}-{_digest([listed, stats])}"


class DecodedCache:
    """Decoded images of one split, a row per file; a row counts once its `done` flag is set.

    Attributes:
        path: the pixels file (the flags sit beside it, `.done.npy`).
    """

    def __init__(self, path: Path, pixels: np.ndarray, done: np.ndarray):
        self.path, self._pixels, self._done = path, pixels, done

    @classmethod
    def open(cls, folder: Path, paths: Sequence[Path], size: int, interpolation: Interpolation,
             decode: Decode) -> "DecodedCache":
        """Open (or create) the entry for `paths` at `size`, deleting stale versions of it.

        Raises:
            DatasetError: the folder cannot be written, or an entry file is damaged.
        """
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(f"--cache {folder}: cannot create the folder ({exc.strerror})") from None
        prefix, name = cache_name(paths, size, interpolation, decode)
        for stale in folder.glob(f"{prefix}-*.npy"):
            if not stale.name.startswith(name + "."):
                stale.unlink(missing_ok=True)  # a file changed since: those rows are not its pixels any more
        pixels = _open_array(folder / f"{name}.pixels.npy", (len(paths), size, size, 3))
        done = _open_array(folder / f"{name}.done.npy", (len(paths),))
        return cls(folder / f"{name}.pixels.npy", pixels, done)

    def __len__(self) -> int:
        return len(self._done)

    @property
    def filled(self) -> int:
        """How many rows hold decoded pixels."""
        return int(np.count_nonzero(self._done))

    def get(self, index: int) -> Optional[np.ndarray]:
        """A copy of row `index`, or None if it was never filled."""
        return np.array(self._pixels[index]) if self._done[index] else None

    def put(self, index: int, pixels: np.ndarray) -> None:
        """Fill row `index`; the flag is set after the pixels, so a half-written row never counts."""
        self._pixels[index] = pixels
        self._done[index] = 1


def _open_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 .npy of `shape`, memory-mapped for reading and writing; created (sparse, zeros) if missing."""
    if not path.exists():
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        try:
            created = np.lib.format.open_memmap(temp, mode="w+", dtype=np.uint8, shape=shape)
            created.flush()
            del created
            try:
                os.link(temp, path)  # atomic, and never replaces a file another worker created first
            except FileExistsError:
                pass
        finally:
            os.unlink(temp)
    try:
        array = np.load(path, mmap_mode="r+")
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: damaged decoded-image cache ({exc}); delete it and train again") from None
    if array.shape != shape or array.dtype != np.uint8:
        raise DatasetError(f"{path}: decoded-image cache holds {array.dtype} {array.shape}, expected uint8 {shape}; "
                           "delete it and train again")
    return array
