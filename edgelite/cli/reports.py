"""Report outputs of the commands (--out, --json, --csv, --plot): checked before any work.

The rule itself lives in `edgelite.atomic`; this module only names what a
report must never be written over: the model, and every file the command reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Optional

from edgelite.atomic import ReportTarget, refuse_same_file, report_target

# One sentence for every report option's --help.
REPLACED = ("A report: an existing file is replaced whole (a symlink's target), a FIFO or device is written "
            "through, the model or an input is refused.")


def check_report(path: Optional[Path], option: str, models: Iterable[Path],
                 inputs: Iterable[Path] = ()) -> Optional[ReportTarget]:
    """How the report at `path` is written, after refusing a path that is a model or an input (None: no report).

    Raises:
        OptionError: the path cannot take a report, or it is one of `models` or a file `inputs` names
            (an input folder stands for every image below it).
    """
    if path is None:
        return None
    target = report_target(Path(path), option)
    refuse_same_file(target, option, "the model", models)
    refuse_same_file(target, option, "an input", _input_files(inputs))
    return target


def _input_files(paths: Iterable[Path]) -> Iterator[Path]:
    from edgelite.runtime import list_images

    for path in paths:
        yield from list_images(path) if Path(path).is_dir() else [Path(path)]
