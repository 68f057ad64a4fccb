"""Writing files without destroying what is there.

Two kinds of output (STYLE.md, "Files, processes and other engines"):

- Artifacts and checkpoints are work. Their writers refuse an existing file
  unless forced, then write it with `atomic_path`: a temp file beside the
  target, fsynced, renamed over it only on success.
- Reports (predict's results, bench's JSON/CSV/PNG, evaluate's plot) are
  replaced without asking, by the one rule of `report_target`/`report_file`:
  a regular file or a new path is replaced atomically; a symlink is followed
  (its target is replaced, the link stays a link); a FIFO, a character device
  or /dev/stdout is written straight through, never renamed over; a folder,
  a block device or a socket is refused; and `refuse_same_file` refuses, before
  any work, a path that is the model or one of the inputs.

Every temp file carries our prefix and is removed on failure, Ctrl-C, SIGTERM
and SIGHUP.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Union

from edgelite.errors import OptionError

TEMP_PREFIX = ".edgelite-"
# Paths that name one of this process's open descriptors: opening them again would truncate or
# reposition what the shell set up, and renaming over them would replace the shell's file.
_DESCRIPTOR_PATH = re.compile(r"/dev/(?:(stdout)|(stderr)|fd/(\d+))|/proc/(?:self|thread-self|(\d+))/fd/(\d+)")
_MAX_LINKS = 40  # Linux's own limit on symlinks followed in one lookup


# -- temp files removed on SIGTERM and SIGHUP ----------------------------------------------------------
_live_temps: set[str] = set()
_previous_handlers: dict[int, object] = {}
_signals_lock = threading.Lock()


def _terminated(signum, frame) -> None:
    """Remove every live temp file, then let the signal do what it did before (by default, end the process)."""
    for temp in list(_live_temps):
        try:
            os.unlink(temp)
        except OSError:
            pass
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _terminate_signals() -> list[int]:
    return [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]


@contextmanager
def _removed_on_terminate(temp: str) -> Iterator[None]:
    """Remove `temp` if SIGTERM or SIGHUP arrives while the block runs (handlers can only be set on the main thread)."""
    main = threading.current_thread() is threading.main_thread()
    with _signals_lock:
        _live_temps.add(temp)
        if main and not _previous_handlers:
            for number in _terminate_signals():
                current = signal.getsignal(number)
                if current is not signal.SIG_IGN:  # an ignored signal ends nothing, so nothing to clean
                    _previous_handlers[number] = current
                    signal.signal(number, _terminated)
    try:
        yield
    finally:
        with _signals_lock:
            _live_temps.discard(temp)
            if main and not _live_temps:
                for number, previous in list(_previous_handlers.items()):
                    if signal.getsignal(number) is _terminated:
                        signal.signal(number, previous if previous is not None else signal.SIG_DFL)
                _previous_handlers.clear()


# -- artifacts and checkpoints ---------------------------------------------------------------------------
@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path in the target's folder; fsync it and rename it over `path` only on success."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp")
    os.close(handle)
    with _removed_on_terminate(temp):
        try:
            yield Path(temp)
            os.chmod(temp, 0o666 & ~_umask())
            _fsync_path(temp)
            os.replace(temp, path)
            _fsync_folder(path.parent)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)


def write_bytes_atomic(path: Path, content: bytes) -> None:
    """Write `content` to `path` so that readers see the old file or the whole new one."""
    with atomic_path(path) as temp:
        temp.write_bytes(content)


# -- reports -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportTarget:
    """Where a report goes and how it is written, decided once, before any work.

    Attributes:
        given: the path as the user wrote it.
        path: the file written: `given` with every symlink followed.
        through: written straight through (a FIFO, a character device, a descriptor such as /dev/stdout),
            never renamed over; otherwise replaced atomically.
        descriptor: the open descriptor `given` names (/dev/stdout is 1), written through a copy of it.
        identity: (st_dev, st_ino) of what is there now, None for a new path.
    """

    given: Path
    path: Path
    through: bool
    descriptor: Optional[int] = None
    identity: Optional[tuple[int, int]] = None

    def same_file(self, other: Path) -> bool:
        """Whether `other` (symlinks followed) is the file this report would write: same device and inode."""
        if self.identity is None:
            return False
        try:
            info = os.stat(other)
        except (OSError, ValueError):
            return False
        return (info.st_dev, info.st_ino) == self.identity


def report_target(path: Path, option: str = "output") -> ReportTarget:
    """Decide how the report at `path` is written; refuse a path no report can go to.

    Raises:
        OptionError: `path` is a folder, a block device or a socket, its folder does not
            exist or cannot be written, it names a closed descriptor, or its symlinks loop.
    """
    given = Path(path)
    final, descriptor = _follow_links(given, option)
    if descriptor is not None:
        try:
            info = os.fstat(descriptor)
        except OSError:
            raise OptionError(f"{option} {given}: descriptor {descriptor} is not open") from None
        return ReportTarget(given, final, True, descriptor, (info.st_dev, info.st_ino))
    try:
        info = os.stat(final)
    except FileNotFoundError:
        _check_folder(given, final.parent, option)
        return ReportTarget(given, final, False)
    except OSError as exc:
        raise OptionError(f"{option} {given}: {exc.strerror or exc}") from None
    identity = (info.st_dev, info.st_ino)
    if stat.S_ISREG(info.st_mode):
        _check_folder(given, final.parent, option)
        return ReportTarget(given, final, False, identity=identity)
    if stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode):
        return ReportTarget(given, final, True, identity=identity)
    kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a block device" if stat.S_ISBLK(info.st_mode) else \
        "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file"
    shown = f"{given}" if final == given else f"{given} (-> {final})"
    raise OptionError(f"{option} {shown} is {kind}; expected a file (replaced whole), a FIFO or a character device")


def refuse_same_file(target: ReportTarget, option: str, what: str, paths: Iterable[Path]) -> None:
    """Refuse, before any work, a report that would be written over one of `paths` (the model, an input).

    Raises:
        OptionError: the report's path is one of `paths`, directly, through a symlink or as a hard link.
    """
    if target.identity is None:
        return
    for other in paths:
        if target.same_file(Path(other)):
            same = "" if Path(other) == target.given else f" ({other})"
            raise OptionError(f"{option} {target.given} is {what}{same}; writing the report there would destroy it: "
                              "choose another path")


@contextmanager
def report_file(target: Union[ReportTarget, Path], mode: str = "wb", option: str = "output") -> Iterator[IO]:
    """Open a report for writing by the rule in this module's docstring; commit it when the block ends cleanly.

    Args:
        target: a `ReportTarget`, or a path to classify now.
        mode: "wb" for bytes, "w" for UTF-8 text (newlines as written).
        option: the option's name, for error messages.
    """
    if not isinstance(target, ReportTarget):
        target = report_target(Path(target), option)
    text = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
    if target.through:
        handle = open(_open_through(target), mode, **text)
        with handle:
            yield handle
        return
    descriptor, temp = tempfile.mkstemp(dir=target.path.parent, prefix=f"{TEMP_PREFIX}{target.path.name}.",
                                        suffix=".tmp")
    with _removed_on_terminate(temp):
        try:
            with open(descriptor, mode, **text) as handle:
                yield handle
                handle.flush()
                os.fchmod(handle.fileno(), 0o666 & ~_umask())
                os.fsync(handle.fileno())
            os.replace(temp, target.path)
            _fsync_folder(target.path.parent)
        finally:
            if os.path.lexists(temp):
                os.unlink(temp)


def write_report_bytes(path: Path, content: bytes, option: str = "output") -> Path:
    """Write a whole report by the rule in this module's docstring; return the path as given."""
    with report_file(Path(path), "wb", option) as handle:
        handle.write(content)
    return Path(path)


def _follow_links(path: Path, option: str) -> tuple[Path, Optional[int]]:
    """`path` with every symlink followed, or the descriptor it names (/dev/stdout, /dev/fd/N, /proc/self/fd/N)."""
    current = Path(os.path.abspath(path))
    for _ in range(_MAX_LINKS):
        descriptor = _descriptor_of(current)
        if descriptor is not None:
            return current, descriptor
        if not current.is_symlink():
            # Folders above it may be links too; the name itself is not one.
            return Path(os.path.realpath(current.parent)) / current.name, None
        current = Path(os.path.abspath(current.parent / os.readlink(current)))
    raise OptionError(f"{option} {path}: too many levels of symbolic links")


def _descriptor_of(path: Path) -> Optional[int]:
    match = _DESCRIPTOR_PATH.fullmatch(os.path.normpath(str(path)))
    if match is None:
        return None
    stdout, stderr, dev_fd, pid, proc_fd = match.groups()
    if pid is not None and int(pid) != os.getpid():
        return None  # another process's descriptor: follow its link like any other
    return 1 if stdout else 2 if stderr else int(dev_fd or proc_fd)


def _open_through(target: ReportTarget) -> int:
    """A descriptor writing straight into the FIFO, device or descriptor: nothing created, truncated or renamed."""
    if target.descriptor is not None:
        return os.dup(target.descriptor)
    try:
        return os.open(target.path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise OptionError(f"cannot write to {target.given}: {exc.strerror or exc}") from None


def _check_folder(given: Path, folder: Path, option: str) -> None:
    if not folder.is_dir():
        raise OptionError(f"{option} {given}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OptionError(f"{option} {given}: cannot write in {folder} (permission denied)")


def _fsync_path(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every platform or file system can open a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # the data is synced; some file systems refuse to sync a folder
    finally:
        os.close(descriptor)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
