"""Where `convert` builds artifacts before they go into --out, and how they get there.

A run works in a staging folder inside `out` (same file system, so moves are
renames). The folder carries our prefix and a marker file, and the run holds
an OS lock (flock) on that marker for its whole life. A later run removes only
staging folders whose marker is unlocked: the lock, not a process id, says a
run is over, so a live run in another PID namespace or on another host that
shares the folder is never touched, and a user's folder without the marker
never is either.

Installing a build is all or nothing: files it replaces (with --force) are
first moved aside into the staging folder and put back on any failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

try:
    import fcntl
    HAVE_LOCKS = True
except ImportError:  # not POSIX: no lock, so no folder is ever judged stale
    HAVE_LOCKS = False

STAGING_PREFIX = ".edgelite-staging-"
MARKER = "edgelite-staging.lock"
_UNPUBLISHED = ".edgelite-new-staging-"  # a staging folder being made, before its marker is locked
_ASIDE = "replaced"  # the sub-folder holding the files a forced run replaces, until it succeeds


def _lock(descriptor: int, wait: bool) -> bool:
    if not HAVE_LOCKS:
        return not wait
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


@dataclass
class Staging:
    """One run's staging folder in `out`, locked until `close`; see the module docstring."""

    out: Path
    folder: Path
    _lock_fd: Optional[int] = None
    _aside: list[tuple[Path, Path]] = field(default_factory=list)  # (final path, where the old entry waits)

    @classmethod
    def create(cls, out: Path) -> "Staging":
        """Make a staging folder in `out` and take its lock, so it is never judged stale while the run lives."""
        # Built under another name and renamed: a folder with our staging prefix always has its marker,
        # locked (the lock belongs to the file, so it survives the rename).
        work = Path(tempfile.mkdtemp(prefix=_UNPUBLISHED, dir=out))
        descriptor = None
        try:
            descriptor = os.open(work / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                                 0o644)
            _lock(descriptor, wait=True)
            os.write(descriptor, (f"staging folder of edgelite convert: pid {os.getpid()} on "
                                  f"{socket.gethostname()}, started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; "
                                  "the next convert removes it once this file is no longer locked\n").encode())
            folder = out / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
            os.rename(work, folder)
        except BaseException:
            if descriptor is not None:
                os.close(descriptor)
            shutil.rmtree(work, ignore_errors=True)
            raise
        return cls(out, folder, descriptor)

    @contextmanager
    def temp_files(self) -> Iterator[Path]:
        """Send Python's temp files (the converters' SavedModels and work folders) into this staging folder.

        TensorFlow's converter makes its temp folder with `tempfile` and removes it in its
        own cleanup, which a signal can skip; inside the staging folder it goes with the run.
        """
        folder = self.folder / "tmp"
        folder.mkdir(exist_ok=True)
        before, environment = tempfile.tempdir, os.environ.get("TMPDIR")
        tempfile.tempdir = str(folder)
        os.environ["TMPDIR"] = str(folder)  # TensorFlow's C++ side finds its temp folder there
        try:
            yield folder
        finally:
            tempfile.tempdir = before
            if environment is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = environment
            shutil.rmtree(folder, ignore_errors=True)

    def set_aside(self, final: Path) -> None:
        """Move the entry at `final` into the staging folder, to be put back by `restore` or dropped by `close`."""
        aside = self.folder / _ASIDE
        aside.mkdir(exist_ok=True)
        target = aside / final.name
        os.rename(final, target)
        self._aside.append((final, target))

    def restore(self, installed: list[Path]) -> bool:
        """Remove `installed` (what this run moved into `out`) and put every set-aside entry back.

        Returns False if an old entry could not be put back: it is then still in the staging folder,
        which must be kept.
        """
        for path in installed:
            if not path.is_dir() or path.is_symlink():
                path.unlink(missing_ok=True)
        restored = True
        for final, aside in reversed(self._aside):
            try:
                os.rename(aside, final)
            except OSError:
                restored = False
        return restored

    def close(self, remove: bool = True) -> None:
        """Remove the staging folder, then release the lock.

        With `remove=False` the folder stays, without its marker: it then holds files
        that could not be put back, and no later run may judge it stale and delete them.
        """
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            (self.folder / MARKER).unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def remove_stale(out: Path) -> list[str]:
    """Remove the staging folders in `out` of runs that are over (marker unlocked); return a note for each."""
    notes = []
    for folder in sorted(out.glob(f"{STAGING_PREFIX}*")):
        if not HAVE_LOCKS or folder.is_symlink() or not folder.is_dir():
            continue
        marker = folder / MARKER
        if marker.is_symlink() or not marker.is_file():
            continue  # not made by edgelite: never ours to remove
        try:
            descriptor = os.open(marker, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            if not _lock(descriptor, wait=False):
                continue  # a run holds it, wherever it runs
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(descriptor)
        notes.append(f"removed {folder.name} from {out}: the staging folder of an interrupted convert "
                     "(its lock was free)")
    return notes


def missing_folders(out: Path) -> list[Path]:
    """`out` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not out.exists() and out != out.parent:
        missing.append(out)
        out = out.parent
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) this run created, stopping at the first one someone else put files in."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break
