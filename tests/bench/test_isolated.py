"""`edgelite bench` from a folder that holds a planted `edgelite/` package: only our code runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgelite.isolated import PACKAGE_ROOT, python_module_command


def plant(folder: Path) -> Path:
    """A package named edgelite in `folder` that leaves a marker and fails when imported."""
    marker = folder / "planted-code-ran"
    (folder / "edgelite" / "bench").mkdir(parents=True)
    for init in (folder / "edgelite" / "__init__.py", folder / "edgelite" / "bench" / "__init__.py"):
        init.write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit('planted package imported')\n")
    return marker


def test_bench_from_a_folder_with_a_planted_package_runs_only_our_code(bench_models, tmp_path):
    marker = plant(tmp_path)
    # The CLI starts by file (like its console script), so the parent is isolated too; the worker is ours.
    launcher = tmp_path / "launcher" / "edgelite_cli.py"
    launcher.parent.mkdir()
    launcher.write_text("import sys\nfrom edgelite.cli import main\nsys.exit(main())\n")
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    done = subprocess.run([sys.executable, str(launcher), "bench", str(bench_models["tflite_float32"]), "--runs", "2",
                           "--json", str(tmp_path / "b.json")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows and all(row["error"] is None for row in rows)
    assert not marker.exists()


@pytest.mark.parametrize("safe_path_flag", [True, False], ids=["-P", "-I with the path given (3.10)"])
def test_the_child_imports_our_edgelite_not_the_working_folders(tmp_path, safe_path_flag):
    if safe_path_flag and sys.version_info < (3, 11):
        pytest.skip("-P needs Python 3.11")
    marker = plant(tmp_path)
    probe = tmp_path / "probe"
    (probe / "probe_module").mkdir(parents=True)
    (probe / "probe_module" / "__init__.py").write_text("")
    (probe / "probe_module" / "__main__.py").write_text("import edgelite, sys\nprint(edgelite.__file__)\n")
    argv = python_module_command("probe_module", safe_path_flag)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_ROOT, str(probe)]))
    if not safe_path_flag:  # -I ignores PYTHONPATH: the probe's folder comes in through the parent's sys.path
        argv = python_module_command_with(argv, str(probe))
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve() == Path(PACKAGE_ROOT, "edgelite", "__init__.py").resolve()
    assert not marker.exists()


def python_module_command_with(argv: list[str], extra: str) -> list[str]:
    """The -I command with one more folder on its path (the parent would have it on sys.path)."""
    return [*argv[:-1], f"import sys; sys.path.append({extra!r}); " + argv[-1]]
