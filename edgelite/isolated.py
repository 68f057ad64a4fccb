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
import site
import sys
from pathlib import Path
from typing import Optional

import edgelite

# The folder the running edgelite was imported from: the child imports the same one.
PACKAGE_ROOT = str(Path(edgelite.__file__).resolve().parent.parent)


def _site_folders() -> set[str]:
    folders = set(site.getsitepackages()) if hasattr(site, "getsitepackages") else set()
    folders.add(site.getusersitepackages())
    return {str(Path(f).resolve()) for f in folders}


def _search_path() -> list[str]:
    """The parent's import path without the working folder; our package's root kept where it was.

    When edgelite itself was imported from the working folder (`python -m
    edgelite` in a clone), that folder is what the user ran: it stays, first.
    """
    cwd = Path.cwd().resolve()
    paths = [PACKAGE_ROOT] if Path(PACKAGE_ROOT) == cwd else []
    for entry in sys.path:
        if entry and entry not in paths and Path(entry).resolve() != cwd:
            paths.append(entry)
    if PACKAGE_ROOT not in paths:
        paths.append(PACKAGE_ROOT)
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
    """os.environ plus `extra`; with `-P` the child finds our package through PYTHONPATH.

    A source checkout (editable install, PYTHONPATH or the working folder) is
    put first on PYTHONPATH; an installed package is found in site-packages.
    """
    env = dict(os.environ, **extra)
    if PACKAGE_ROOT in _site_folders():  # installed: the child finds it; never put site-packages before the stdlib
        return env
    current = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != PACKAGE_ROOT]
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, *current])
    return env
