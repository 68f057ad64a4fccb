"""Start our own code in a child Python, never what the working folder happens to hold.

`python -m pkg.module` puts the working folder first on `sys.path`: a folder
named `edgelite/` there (a planted package, or a clone beside the user's files)
would be imported instead of the installed edgelite. Python 3.11 has `-P` to
leave that entry out while keeping PYTHONPATH; 3.10 has only `-I`, which also
drops PYTHONPATH and user site-packages, so there the child gets the parent's
path explicitly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import edgelite

# The folder the running edgelite was imported from: the child imports the same one.
PACKAGE_ROOT = str(Path(edgelite.__file__).resolve().parent.parent)


def _search_path() -> list[str]:
    """The parent's import path without the working folder, with our package's root first."""
    cwd = Path.cwd().resolve()
    paths = [PACKAGE_ROOT]
    for entry in sys.path:
        if entry and entry not in paths and Path(entry).resolve() != cwd:
            paths.append(entry)
    return paths


def python_module_command(module: str, safe_path_flag: Optional[bool] = None) -> list[str]:
    """The argv that runs `module` as `__main__` in a child Python with an isolated path.

    Args:
        module: dotted module name, e.g. "edgelite.bench.worker".
        safe_path_flag: use `-P` (default: when this Python has it, 3.11+);
            False uses `-I` with the path passed explicitly (what 3.10 gets).
    """
    if safe_path_flag is None:
        safe_path_flag = sys.version_info >= (3, 11)
    if safe_path_flag:
        return [sys.executable, "-P", "-m", module]
    code = ("import sys, runpy; sys.path[:0] = " + json.dumps(_search_path())
            + f"; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    return [sys.executable, "-I", "-c", code]


def child_environment(**extra: str) -> dict[str, str]:
    """os.environ plus `extra`, with our package's root first on PYTHONPATH (for `-P`)."""
    env = dict(os.environ, **extra)
    current = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != PACKAGE_ROOT]
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, *current])
    return env
