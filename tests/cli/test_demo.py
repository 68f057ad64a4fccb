"""`edgelite demo`: two classes by default, every class one flag away."""

import json
import re
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.cli.demo import DEMO_CLASSES, SAMPLE, _samples
from edgelite.runtime.folder import LabeledImage
from tests.conftest import make_dataset

pytest.importorskip("keras")


def test_the_default_classes_are_folders_of_the_bundled_sample():
    root = Path(__file__).resolve().parents[2] / SAMPLE
    for split in ("train", "validation"):
        assert all((root / split / name).is_dir() for name in DEMO_CLASSES)


@pytest.mark.parametrize("labels, expected", [
    (("a", "b"), ["a0", "b0", "a1", "b1", "a2", "b2"]),  # the classes in turn
    (("c",), ["c0"]),  # as many as there are
    (("a", "b", "c"), ["a0", "b0", "c0", "a1", "b1", "a2"]),
])
def test_sample_photos_take_the_model_classes_in_turn(labels, expected):
    items = [LabeledImage(Path(f"{label}{i}"), label) for label in "abc" for i in range(4 if label != "c" else 1)]
    assert [str(path) for _, path in _samples(items, labels)] == expected


def test_the_demo_trains_one_sigmoid_unit_on_the_chosen_classes(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 8, "validation": 3})
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--data", str(data), "--out", str(out), "--classes", "red,blue",
                                      "--epochs", "1", "--size", "16"])
    assert result.exit_code == 0, result.output
    assert "training the small CNN on red, blue of" in result.stderr
    [checkpoint] = (out / "run").glob("scratch_*.keras")
    with zipfile.ZipFile(checkpoint) as archive:
        meta = json.loads(archive.read("edgelite.json"))
    assert meta["labels"] == ["blue", "red"] and meta["output_kind"] == "sigmoid"
    photos = [line.split("│")[2].strip() for line in result.stdout.splitlines()
              if re.search(r"(red|green|blue)_\d{3}\.jpg", line)]
    assert sorted(photos) == ["blue"] * 3 + ["red"] * 3  # photos of the two classes only, in turn
    suggested = re.search(r"and: edgelite evaluate (\S+) (\S+) --only-model-classes", result.stderr)
    assert suggested, result.stderr
    evaluated = CliRunner().invoke(cli, ["evaluate", *suggested.groups(), "--only-model-classes", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["skipped"] == {"green": 3} and "error" not in evaluated.stderr
