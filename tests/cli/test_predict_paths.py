"""`edgelite predict` on files, folders and stdin, in every output format."""

import csv
import io
import json
import shutil

import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from tests.conftest import artifact


def run(*args, stdin=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin)


@pytest.fixture()
def folder(color_data, tmp_path):
    """Two classes' photos in nested folders, plus files predict must skip."""
    root = tmp_path / "photos"
    for name in ("red", "blue"):
        target = root / name / "deeper" if name == "blue" else root / name
        target.mkdir(parents=True)
        for image in sorted((color_data / "validation" / name).glob("*.jpg"))[:3]:
            shutil.copy(image, target / image.name)
    (root / "notes.txt").write_text("not an image")
    return root


def test_a_folder_is_read_recursively_by_suffix_in_sorted_order(artifacts, folder):
    result = run("predict", artifact(artifacts, "tflite", "int8"), folder, "--jsonl", "--top-k", 2)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    expected = sorted(str(p) for p in folder.rglob("*.jpg"))
    assert [r["image"] for r in records] == expected
    for record in records:
        assert set(record) == {"image", "predictions"}
        assert [set(p) for p in record["predictions"]] == [{"label", "score"}] * 2
        assert record["predictions"][0]["label"] in record["image"]


def test_stdin_paths_and_a_bad_image_give_an_error_record_and_exit_1(artifacts, folder, tmp_path):
    good = sorted(folder.rglob("*.jpg"))[:2]
    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    stdin = f"{good[0]}\n{bad}\n\n{good[1]}\n"
    result = run("predict", artifact(artifacts, "onnx", "int8"), "-", "--jsonl", stdin=stdin)
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[1] == {"image": str(bad), "error": f"{bad}: not an image Pillow can read"}
    assert [r["image"] for r in records] == [str(good[0]), str(bad), str(good[1])]
    assert "predictions" in records[0] and "predictions" in records[2]
    assert result.stderr.splitlines() == [f"error: {bad}: not an image Pillow can read",
                                          "error: 1 of 3 images could not be read"]


def test_csv_has_a_header_and_a_row_per_image(artifacts, folder, tmp_path):
    missing = tmp_path / "missing.jpg"
    result = run("predict", artifact(artifacts, "tflite", "float32"), folder / "red", missing, "--csv", "--top-k", 2)
    assert result.exit_code == 1
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["image", "label_1", "score_1", "label_2", "score_2", "error"]
    assert len(rows) == 1 + 3 + 1
    assert all(row[1] == "red" and row[5] == "" for row in rows[1:4])
    assert rows[4] == [str(missing), "", "", "", "", f"{missing}: no such file"]


@pytest.mark.parametrize("suffix, check", [
    (".jsonl", lambda text: len([json.loads(line) for line in text.splitlines()]) == 6),
    (".csv", lambda text: text.startswith("image,label_1,score_1")),
    (".json", lambda text: len(json.loads(text)["results"]) == 6),
])
def test_out_file_is_written_whole_in_the_format_of_its_suffix(artifacts, folder, tmp_path, suffix, check):
    out = tmp_path / f"results{suffix}"
    result = run("predict", artifact(artifacts, "tflite", "int8"), folder, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert check(out.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["photos", out.name])  # no temp file left


def test_the_table_streams_one_row_per_image(artifacts, folder):
    result = run("predict", artifact(artifacts, "tflite", "int8"), folder / "red")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["image", "#1", "#2", "#3"]
    assert len(lines) == 2 + 3 and all(" red " in f"{line} " for line in lines[2:])


def test_a_folder_without_images_is_an_error(artifacts, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no pictures here")
    result = run("predict", artifact(artifacts, "tflite", "int8"), tmp_path / "empty")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no images found in {tmp_path / 'empty'} (looked for .jpg, .jpeg")
