"""Saving a matplotlib figure as a PNG report, the one way `bench --plot` and `evaluate --plot` do it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from edgelite.atomic import ReportTarget, report_file, report_target
from edgelite.errors import missing_dependency


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no screen needed), or an install hint when it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise missing_dependency("matplotlib", "bench") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: Union[Path, ReportTarget]) -> Path:
    """Write `figure` by the report rule of `edgelite.atomic`, with a margin so nothing is cut, then close it.

    Returns:
        The path as the caller gave it (a symlink stays named as given).
    """
    import matplotlib.pyplot as plt

    target = path if isinstance(path, ReportTarget) else report_target(Path(path))
    try:
        with report_file(target) as handle:
            figure.savefig(handle, format="png", dpi=110, bbox_inches="tight", pad_inches=0.2)
    finally:
        plt.close(figure)
    return target.given
