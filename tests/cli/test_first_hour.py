"""What a new user meets in the first hour (issue 17): top-k past the classes, evaluating a subset of
the folder's classes, the summary of `predict --out`, help texts."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from edgelite.cli import cli

COLOURS = {"red": (200, 10, 10), "green": (10, 200, 10), "blue": (10, 10, 200)}


def two_class_model(folder: Path) -> Path:
    """An ONNX model scoring red and green by the mean of their channel (2 classes), with edgelite metadata."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgelite.runtime.metadata import ArtifactMetadata

    keep = numpy_helper.from_array(np.array([0, 1], dtype=np.int64), "keep")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["means"], axes=[1, 2], keepdims=0),
         helper.make_node("Gather", ["means", "keep"], ["scores"], axis=1)], "two",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])], initializer=[keep])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "edgelite", ArtifactMetadata(("red", "green"), 8, 8, output_kind="logits",
                                                          decode="exact").to_json()
    path = folder / "two.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    return two_class_model(tmp_path_factory.mktemp("two"))


@pytest.fixture(scope="module")
def three_folders(tmp_path_factory) -> Path:
    """red/ (3 images), green/ (2) and blue/ (4): one folder more than the two-class model knows."""
    root = tmp_path_factory.mktemp("three")
    for name, count in (("red", 3), ("green", 2), ("blue", 4)):
        (root / name).mkdir()
        for i in range(count):
            Image.new("RGB", (8, 8), COLOURS[name]).save(root / name / f"{i}.png")
    return root


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_predict_shows_no_more_classes_than_the_model_has(two, three_folders):
    result = run("predict", two, three_folders / "red", "--top-k", "5")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[1].split()
    assert header == ["image", "#1", "#2"]
    result = run("predict", two, three_folders / "red", "--top-k", "5", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["image", "label_1", "score_1", "label_2", "score_2", "error"]
    assert all(len(row) == 6 and row[1] == "red" and row[3] == "green" for row in rows[1:])


def test_predict_out_ends_with_a_summary(two, three_folders, tmp_path):
    out = tmp_path / "results.jsonl"
    result = run("predict", two, three_folders / "green", "--out", out)
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 2
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"2 images, 0 errors, \d+\.\d s \(\d+\.\d images/s\); written to {re.escape(str(out))}",
                        last), last
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    result = run("predict", two, three_folders / "green", tmp_path / "broken.jpg", "--out", tmp_path / "r.csv")
    assert result.exit_code == 1
    assert "3 images, 1 error, " in result.stderr and f"written to {tmp_path / 'r.csv'}" in result.stderr


def test_evaluate_refuses_unknown_folders_and_says_how_to_go_on(two, three_folders):
    result = run("evaluate", two, three_folders)
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("; --only-model-classes evaluates the model's classes alone")


def test_evaluate_only_the_model_classes(two, three_folders):
    result = run("evaluate", two, three_folders, "--only-model-classes")
    assert result.exit_code == 0, result.output
    assert "note: skipped 1 class folder the model does not know: blue (4 images)" in result.stderr
    words = " ".join(result.stdout.split())  # the title wraps at the table's width
    assert "on 5 images" in words and "accuracy 100.0%, top-2 100.0%" in words
    assert "top-5" not in words
    data = json.loads(run("evaluate", two, three_folders, "--only-model-classes", "--json").stdout)
    assert data["skipped"] == {"blue": 4} and data["images"] == 5 and data["top_k"] == 2
    assert data["confusion"] == [[3, 0], [0, 2]]


def test_evaluate_with_no_folder_of_the_model(two, tmp_path):
    (tmp_path / "blue").mkdir()
    Image.new("RGB", (8, 8), COLOURS["blue"]).save(tmp_path / "blue" / "0.png")
    result = run("evaluate", two, tmp_path, "--only-model-classes")
    assert result.exit_code == 1
    assert result.stderr == (f"error: {tmp_path}: none of the class folders ['blue'] is a class of the model "
                             "['red', 'green']\n")


def test_demo_epochs_has_help():
    result = run("demo", "--help")
    assert re.search(r"--epochs INTEGER RANGE\s+Passes over the training photos", result.output), result.output


def test_serve_help_says_how_two_artifacts_of_one_checkpoint_are_named():
    words = " ".join(run("serve", "--help").output.split())
    assert "scratch_int8.tflite and scratch_int8.onnx are scratch_int8 and scratch_int8_onnx" in words
    assert "/v2/models/NAME/versions/1/" in words
