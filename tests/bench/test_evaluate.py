"""`evaluate` on a crafted model whose confusion matrix is known, on a checkpoint, and through the CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgelite.bench.evaluate import EvaluateOptions, evaluate
from edgelite.errors import DatasetError
from tests.conftest import artifact

LABELS = ("red", "green", "blue")
COLOURS = {"R": (200, 10, 10), "G": (10, 200, 10), "B": (10, 10, 200),
           "G'": (60, 200, 10), "B'": (10, 60, 200), "R'": (200, 60, 10)}
# Folder -> the colours of its images. The crafted model's top class is the brightest channel.
FOLDERS = {"red": ["R", "R", "R", "G'"], "green": ["G", "G", "B'"], "blue": ["B", "B", "B", "B", "R'"]}


@pytest.fixture(scope="module")
def channel_model(tmp_path_factory):
    """An ONNX model scoring each class by the mean of its colour channel, with edgelite metadata."""
    import onnx
    from onnx import TensorProto, helper

    from edgelite.runtime.metadata import ArtifactMetadata

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["scores"], axes=[1, 2], keepdims=0)], "channels",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "edgelite", ArtifactMetadata(LABELS, 8, 8, decode="exact").to_json()
    path = tmp_path_factory.mktemp("crafted") / "channels.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def crafted_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("crafted-data")
    for folder, colours in FOLDERS.items():
        (root / folder).mkdir()
        for i, colour in enumerate(colours):
            Image.new("RGB", (8, 8), COLOURS[colour]).save(root / folder / f"{i}.png")
    return root


def test_the_known_confusion_matrix_and_scores(channel_model, crafted_data):
    result = evaluate(channel_model, crafted_data, EvaluateOptions(top_k=2))
    assert result.classes == LABELS
    assert result.confusion == [[3, 1, 0], [0, 2, 1], [1, 0, 4]]
    assert result.images == 12
    assert result.accuracy == pytest.approx(9 / 12)
    assert result.top_k_accuracy == pytest.approx(11 / 12)  # only R' (red, green, blue) misses blue in its top 2
    by_name = {c.name: c for c in result.per_class}
    assert (by_name["red"].precision, by_name["red"].recall, by_name["red"].support) == (0.75, 0.75, 4)
    assert by_name["green"].precision == pytest.approx(2 / 3) and by_name["green"].recall == pytest.approx(2 / 3)
    assert (by_name["blue"].precision, by_name["blue"].recall) == (0.8, 0.8)
    assert by_name["blue"].f1 == pytest.approx(0.8)
    assert {(m["true"], m["predicted"]) for m in result.mistakes} == {("red", "green"), ("green", "blue"),
                                                                     ("blue", "red")}


def test_folders_the_model_does_not_know_are_an_error_naming_both_sets(channel_model, crafted_data, tmp_path):
    (tmp_path / "red").mkdir()
    (tmp_path / "purple").mkdir()
    for folder in ("red", "purple"):
        Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / folder / "x.png")
    with pytest.raises(DatasetError) as error:
        evaluate(channel_model, tmp_path)
    assert str(error.value) == (f"{tmp_path}: class folders ['purple'] are not classes of the model; the model has "
                                "['red', 'green', 'blue'], the folder has ['purple', 'red']; --only-model-classes "
                                "evaluates the model's classes alone")


def test_a_checkpoint_and_its_float32_artifact_agree(trained_checkpoint, artifacts, color_data):
    keras = evaluate(trained_checkpoint, color_data / "validation", EvaluateOptions(top_k=2))
    tflite = evaluate(artifact(artifacts, "tflite", "float32"), color_data / "validation", EvaluateOptions(top_k=2))
    assert keras.confusion == tflite.confusion
    assert keras.images == 45 and keras.accuracy >= 0.9


def test_cli_json_table_and_plot(channel_model, crafted_data, tmp_path):
    from edgelite.cli import cli

    plot = tmp_path / "confusion.png"
    result = CliRunner().invoke(cli, ["evaluate", str(channel_model), str(crafted_data), "--top-k", "2",
                                      "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["confusion"] == [[3, 1, 0], [0, 2, 1], [1, 0, 4]] and data["top_k"] == 2
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = CliRunner().invoke(cli, ["evaluate", str(channel_model), str(crafted_data)])
    assert result.exit_code == 0, result.output
    assert "accuracy 75.0%" in result.stdout and "most confident mistakes" in result.stdout
