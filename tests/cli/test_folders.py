"""predict and evaluate on awkward folders: unreadable sub-folders, class folders that are symlinks."""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.runtime import folder as folder_module
from tests.conftest import artifact


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def copy_class(color_data, name: str, target: Path, count: int = 2) -> None:
    target.mkdir(parents=True)
    for image in sorted((color_data / "validation" / name).glob("*.jpg"))[:count]:
        shutil.copy(image, target / image.name)


def test_predict_reports_an_unreadable_sub_folder_as_an_error_item_and_exits_1(artifacts, color_data, tmp_path,
                                                                            monkeypatch):
    photos = tmp_path / "photos"
    copy_class(color_data, "red", photos / "a")
    copy_class(color_data, "blue", photos / "b")
    copy_class(color_data, "green", photos / "c")
    real = os.scandir

    def scandir(path="."):  # photos/b as a user without read permission sees it (the tests may run as root)
        if Path(path) == photos / "b":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(folder_module.os, "scandir", scandir)
    result = run("predict", artifact(artifacts, "tflite", "int8"), photos, "--jsonl")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    message = f"{photos / 'b'}: cannot read the folder (Permission denied)"
    assert [r["image"] for r in records] == [str(p) for p in sorted((photos / "a").iterdir())] + [
        str(photos / "b")] + [str(p) for p in sorted((photos / "c").iterdir())]
    assert records[2] == {"image": str(photos / "b"), "error": message}
    assert sum("predictions" in r for r in records) == 4
    assert result.stderr.splitlines() == [f"error: {message}", "error: 1 of 5 images could not be read"]


def test_evaluate_follows_class_folders_that_are_symlinks(artifacts, color_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("red", "green", "blue"):
        copy_class(color_data, name, tmp_path / "store" / name, count=3)
        (data / name).symlink_to(tmp_path / "store" / name, target_is_directory=True)
    (data / "red" / "loop").symlink_to(data, target_is_directory=True)  # must not recurse forever
    result = run("evaluate", artifact(artifacts, "tflite", "float32"), data, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 9
    assert [row["support"] for row in report["per_class"]] == [3, 3, 3]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_hidden_folders_are_not_read(artifacts, color_data, tmp_path, command):
    data = tmp_path / "data"
    for name in ("red", "green", "blue"):
        copy_class(color_data, name, data / name)
    copy_class(color_data, "red", data / ".trash")  # not a class, not images to predict
    args = ["--json"] if command == "evaluate" else ["--jsonl"]
    result = run(command, artifact(artifacts, "tflite", "float32"), data, *args)
    assert result.exit_code == 0, result.output
    count = json.loads(result.stdout)["images"] if command == "evaluate" else len(result.stdout.splitlines())
    assert count == 6
