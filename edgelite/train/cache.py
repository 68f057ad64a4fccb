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
import logging
import os
import tempfile
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edgelite.errors import DatasetError
from edgelite.modes import Decode, Interpolation

# 2: a CRC-32 per row (.crc.npy); entries of format 1 have none and are not used.
# 3: fast decode keeps a JPEG at 1x the input (was 2x), so "fast" rows of format 2 hold other pixels.
CACHE_FORMAT = 3
_log = logging.getLogger(__name__)


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

    Each row has a CRC-32 beside it (`.crc.npy`): a row whose pixels no longer
    match it (a flipped byte on disk) is decoded again, as is every row of a
    file whose size disagrees with its header (a truncated copy, which
    numpy's memmap would otherwise zero-fill): training never runs on damaged
    pixels. What was rebuilt is said in `notes` (and logged).

    Attributes:
        path: the pixels file (the flags and checksums sit beside it, `.done.npy`, `.crc.npy`).
        notes: what was found damaged and rebuilt.
    """

    def __init__(self, path: Path, pixels: np.ndarray, done: np.ndarray, sums: np.ndarray,
                 notes: Optional[list[str]] = None):
        self.path, self._pixels, self._done, self._sums = path, pixels, done, sums
        self.notes: list[str] = notes if notes is not None else []
        self._damaged_rows = 0

    @classmethod
    def open(cls, folder: Path, paths: Sequence[Path], size: int, interpolation: Interpolation,
             decode: Decode) -> "DecodedCache":
        """Open (or create) the entry for `paths` at `size`, deleting stale versions of it.

        A damaged entry file (its size not what its header says) is rebuilt, with a note.

        Raises:
            DatasetError: the folder cannot be written, or an entry file cannot be read.
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
        files = {part: folder / f"{name}.{part}.npy" for part in ("pixels", "crc", "done")}
        notes: list[str] = []
        shapes = {"pixels": ((len(paths), size, size, 3), np.uint8), "crc": ((len(paths),), np.uint32),
                  "done": ((len(paths),), np.uint8)}
        for part, (shape, dtype) in shapes.items():
            problem = _damage(files[part], shape, dtype)
            if problem:
                # the flags (and sums) say which rows hold good pixels: without intact pixels they must go too
                for later in list(shapes)[list(shapes).index(part):]:
                    files[later].unlink(missing_ok=True)
                notes.append(f"{files[part].name}: damaged decoded-image cache ({problem}); rebuilt, its images "
                             "are decoded again")
                _log.warning("note: %s", notes[-1])
                break
        pixels, sums, done = (_open_array(files[part], *shapes[part]) for part in ("pixels", "crc", "done"))
        return cls(files["pixels"], pixels, done, sums, notes)

    def __len__(self) -> int:
        return len(self._done)

    @property
    def filled(self) -> int:
        """How many rows hold decoded pixels."""
        return int(np.count_nonzero(self._done))

    def get(self, index: int) -> Optional[np.ndarray]:
        """A copy of row `index`, or None if it was never filled or its pixels fail their checksum."""
        if not self._done[index]:
            return None
        row = np.array(self._pixels[index])
        if zlib.crc32(row) == int(self._sums[index]):
            return row
        self._done[index] = 0
        self._damaged_rows += 1
        if self._damaged_rows == 1:
            self.notes.append(f"{self.path.name}: a row does not match its checksum (the cache is damaged); "
                              "such rows are decoded again")
            _log.warning("note: %s", self.notes[-1])
        return None

    def put(self, index: int, pixels: np.ndarray) -> None:
        """Fill row `index`; the flag is set after the pixels and their checksum, so a half-written row never counts."""
        self._pixels[index] = pixels
        self._sums[index] = zlib.crc32(np.ascontiguousarray(self._pixels[index]))
        self._done[index] = 1


def _damage(path: Path, shape: tuple[int, ...], dtype) -> Optional[str]:
    """What is wrong with an existing entry file (header, dtype, shape or size), or None if it is whole or absent."""
    if not path.exists():
        return None
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            stored_shape, _, stored_dtype = read_header(handle)
            offset = handle.tell()
        size = path.stat().st_size
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        return f"unreadable header: {exc}"
    if tuple(stored_shape) != shape or np.dtype(stored_dtype) != np.dtype(dtype):
        return f"holds {np.dtype(stored_dtype)} {tuple(stored_shape)}, expected {np.dtype(dtype)} {shape}"
    expected = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size != expected:
        return f"{size:,} bytes, its header says {expected:,}"
    return None


def _open_array(path: Path, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """A .npy of `shape`, memory-mapped for reading and writing; created (sparse, zeros) if missing."""
    if not path.exists():
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        try:
            created = np.lib.format.open_memmap(temp, mode="w+", dtype=dtype, shape=shape)
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
    if array.shape != shape or array.dtype != dtype:
        raise DatasetError(f"{path}: decoded-image cache holds {array.dtype} {array.shape}, expected {dtype} {shape}; "
                           "delete it and train again")
    return array
