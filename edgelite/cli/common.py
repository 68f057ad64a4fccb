"""Small helpers the command modules share: parsing lists, printing tables."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgelite.errors import OptionError


def _stderr_console() -> Console:
    """A console on a private copy of fd 2, so silencing native output does not hide the progress bar."""
    try:
        return Console(file=os.fdopen(os.dup(sys.stderr.fileno()), "w"))
    except (AttributeError, OSError, ValueError):  # stderr without a file descriptor (tests)
        return Console(stderr=True)


# Wide enough for the artifact and bench tables when stdout is a pipe or a file (rich assumes 80 columns).
stdout = Console(width=None if sys.stdout.isatty() else 220)
stderr = _stderr_console()


def split_list(value: Optional[str]) -> Optional[tuple[str, ...]]:
    """'a, b,c' -> ('a', 'b', 'c'); None stays None."""
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_labels(value: Optional[str]) -> Optional[tuple[str, ...]]:
    """Labels as a comma list, or a file with one label per line."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        labels = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    else:
        labels = split_list(value) or ()
    if not labels:
        raise OptionError(f"no labels in {value!r}")
    return labels


def _escape_unprintable(text: str, escape: Callable[[str], str]) -> str:
    # str.isprintable is False for control characters (C0, DEL, C1) and for format characters,
    # bidirectional overrides among them: everything a terminal would act on or reorder.
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else escape(ch) for ch in text)


def safe_text(value: object) -> str:
    """Text from a file (labels, names, messages) made safe to show: control characters are escaped."""
    return _escape_unprintable(str(value), lambda ch: ch.encode("unicode_escape").decode("ascii"))


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))  # ensure_ascii: every non-ASCII character escaped


def json_line(data: Any) -> str:
    """One line of JSON with non-ASCII text kept readable, but nothing a terminal would act on.

    json.dumps escapes C0 controls only; DEL, C1 controls and bidirectional
    overrides are escaped here too, so the line parses to the same data.
    """
    return _escape_unprintable(json.dumps(data, ensure_ascii=False, default=str), lambda ch: json.dumps(ch)[1:-1])


# A column whose cells are all at most this long (numbers, sizes, class names) is never wrapped or
# cut; longer text (paths, lists) wraps within its column.
SHORT_CELL = 24
SEPARATORS = "_-. "


def shared_prefix(names: Sequence[str]) -> str:
    """The start that every name shares, up to and with its last separator ('_', '-', '.', ' ').

    Tables show it once in their title and the rest of each name in the rows. It is "" for fewer
    than two distinct names, and never leaves a name empty: 'm_float16', 'm_float32' share 'm_'.
    """
    distinct = sorted(set(names))
    if len(distinct) < 2:
        return ""
    common = os.path.commonprefix(distinct)
    cut = max(common.rfind(separator) for separator in SEPARATORS) + 1
    return common[:cut] if all(len(name) > cut for name in distinct) else ""


def _grid(columns: Sequence[str], rows: Sequence[Sequence[str]], keep: Sequence[int]) -> Table:
    grid = Table()
    for position in keep:  # headers may be class names: Text, like the cells
        short = all(len(row[position]) <= SHORT_CELL for row in rows)
        grid.add_column(Text(columns[position]), justify="left" if position == 0 else "right", no_wrap=short,
                        overflow="ellipsis" if short else "fold")
    for row in rows:
        grid.add_row(*(Text(row[position]) for position in keep))  # Text: no markup interpretation
    return grid


def _cuts(grid: Table, width: int) -> bool:
    """Whether rich, at this width, would shorten a cell that must stay whole (it ends it with '…')."""
    probe = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    probe.print(grid)
    return "…" in probe.file.getvalue()


def fitted_tables(columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int, keys: int = 1) -> list[Table]:
    """The table, or when it is wider than `width`, several tables of its columns, each repeating the
    first `keys` columns, so that no number or name is ever cut short."""
    columns = [safe_text(c) for c in columns]
    rows = [[safe_text(cell) for cell in row] for row in rows]
    everything = list(range(len(columns)))
    if any("…" in cell for cell in [*columns, *(c for row in rows for c in row)]) or \
            not _cuts(_grid(columns, rows, everything), width):
        return [_grid(columns, rows, everything)]
    groups: list[list[int]] = [[]]
    for position in everything[keys:]:
        if groups[-1] and _cuts(_grid(columns, rows, [*range(keys), *groups[-1], position]), width):
            groups.append([])
        groups[-1].append(position)
    return [_grid(columns, rows, [*range(keys), *group]) for group in groups]


def table(title: Optional[str], columns: Sequence[str], rows: Sequence[Sequence[Any]], keys: int = 1,
          console: Optional[Console] = None) -> None:
    """Print a table of rows to stdout (or `console`), split by columns if the terminal is too narrow.

    The title is a line of its own, wrapped at the terminal's width, not the table's.
    """
    console = console or stdout
    if title:
        console.print(Text(safe_text(title), style="italic"))
    for grid in fitted_tables(columns, rows, console.width, keys):
        console.print(grid)


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


PARITY_COLUMNS = ["artifact", "format", "precision", "size", "max |diff|", "top-1 agree", "accuracy", "strict",
                  "min TFLite"]


def artifact_prefix(artifacts) -> str:
    """The start all artifact file names share (the checkpoint's stem), for the title of their table."""
    return shared_prefix([a.path.name for a in artifacts])


def parity_rows(artifacts) -> list[list[str]]:
    """Table rows of converted artifacts with size and parity (convert and demo show them).

    The artifact column leaves out `artifact_prefix(artifacts)`: the title says it once.
    """
    rows = []
    prefix = artifact_prefix(artifacts)
    for a in artifacts:
        p = a.parity
        acc = "-" if p.accuracy is None else f"{p.accuracy:.1%}"
        rows.append([a.path.name[len(prefix):], a.format, a.precision, human_size(a.size_bytes),
                     f"{p.max_abs_diff:.2e}", f"{p.top1_agreement:.1%}", acc, "ok" if p.passed else "below",
                     a.min_runtime or "-"])
    return rows


def warn(message: str) -> None:
    click.echo(f"warning: {safe_text(message)}", err=True)


def note(message: str) -> None:
    click.echo(f"note: {safe_text(message)}", err=True)


class Interrupts:
    """The signal `interrupt_on_terminate` caught, so a swallowed interrupt is raised again.

    Python runs a signal handler wherever the main thread is; when that is a
    finalizer (`__del__`, a weakref callback) or a library's bare `except`,
    the KeyboardInterrupt is printed as "ignored" or dropped and the work goes
    on. `check()` raises it again, and `guard()` makes every progress call a
    check, so a long run stops at its next step, before it publishes anything.
    """

    def __init__(self) -> None:
        self.signal: Optional[int] = None

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal arrived in the block."""
        if self.signal is not None:
            raise KeyboardInterrupt

    def guard(self, progress: Callable[[str, int, int], None]) -> Callable[[str, int, int], None]:
        """`progress`, checking for a caught signal before each call."""
        def checked(description: str, done: int, total: int) -> None:
            self.check()
            progress(description, done, total)
        return checked


@contextlib.contextmanager
def interrupt_on_terminate() -> Iterator[Interrupts]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt for the block, so its cleanup runs as on Ctrl-C.

    Their default action ends the process without running `finally` blocks,
    which would leave a convert's staging folder behind. The block gets an
    `Interrupts` to check at its own steps (see there).
    """
    caught = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def interrupt(signum, frame):
        caught.signal = signum
        raise KeyboardInterrupt

    # A signal the process was started ignoring (`nohup` ignores SIGHUP) stays ignored: it was asked for.
    wanted = [number for number in (getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
              if signal.getsignal(number) is not signal.SIG_IGN]
    previous = {number: signal.signal(number, interrupt) for number in wanted}
    try:
        yield caught
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


class ProgressBar:
    """A rich progress bar on stderr driven by (description, completed, total) calls.

    With `unit`, it also shows the rate (e.g. "images/s"); a total of 0 means unknown.
    """

    def __init__(self, unit: Optional[str] = None) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                   TimeElapsedColumn)

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                return Text(f"{task.speed or 0.0:.1f} {unit}/s")

        columns = [TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        if unit:
            columns.append(Rate())
        self._progress = Progress(*columns, console=stderr, transient=True)
        self._task = None

    def __enter__(self) -> "ProgressBar":
        self._progress.__enter__()
        self._task = self._progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def __call__(self, description: str, completed: int, total: int) -> None:
        self._progress.update(self._task, description=description, completed=completed, total=total or None)
