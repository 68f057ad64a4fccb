"""`--init-from`: a new run from a checkpoint's weights, refused for another family or class set."""

import hashlib
import json
import re
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.errors import ModelFileError, OptionError
from edgelite.runtime.folder import pixel_batches, read_folder
from edgelite.train import TrainOptions, train
from edgelite.train.init_from import TRAIN_ENTRY
from tests.conftest import SIZE

keras = pytest.importorskip("keras")


def _rewrite(source, target, entry, change):
    """Copy a .keras zip, passing one JSON entry through `change` (None removes the entry)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            content = old.read(item)
            if item.filename == entry:
                if change is None:
                    continue
                content = json.dumps(change(json.loads(content))).encode()
            new.writestr(item, content)
    return target


@pytest.mark.parametrize("entry, change, error, message", [
    (TRAIN_ENTRY, lambda d: {**d, "family": "xception"}, OptionError,
     "is a xception checkpoint; it cannot start a scratch run (use 'edgelite train xception --init-from ...')"),
    ("edgelite.json", lambda d: {**d, "labels": ["cat", "dog"]}, OptionError,
     "was trained on classes cat, dog; this dataset has blue, green, red"),
    (TRAIN_ENTRY, None, OptionError, "not a checkpoint written by 'edgelite train'"),
    ("edgelite.json", None, OptionError, "not a checkpoint written by 'edgelite train'"),
])
def test_refuses_a_checkpoint_of_another_family_or_class_set(trained_checkpoint, color_data, tmp_path, entry, change,
                                                              error, message):
    crafted = _rewrite(trained_checkpoint, tmp_path / "crafted.keras", entry, change)
    with pytest.raises(error, match=re.escape(message)):
        train("scratch", TrainOptions(data=color_data, out=tmp_path / "run", epochs=1, init_from=crafted))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argument, message", [
    ("missing.keras", "no such file"),
    ("garbage.keras", "not a readable .keras checkpoint"),
])
def test_refuses_a_file_that_is_not_a_checkpoint(color_data, tmp_path, argument, message):
    (tmp_path / "garbage.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match=message):
        train("scratch", TrainOptions(data=color_data, out=tmp_path / "run", init_from=tmp_path / argument))


def test_refuses_another_size_and_resume_together(trained_checkpoint, color_data, tmp_path):
    with pytest.raises(OptionError, match=f"takes {SIZE}x{SIZE} images; drop --size or pass --size {SIZE}"):
        train("scratch", TrainOptions(data=color_data, out=tmp_path, init_from=trained_checkpoint), {"size": 48})
    with pytest.raises(OptionError, match="--init-from starts a new one; pass one of them"):
        TrainOptions(data=color_data, out=tmp_path, init_from=trained_checkpoint, resume=True)


def _keras_loss(checkpoint, folder):
    items = read_folder(folder)
    pixels = np.concatenate(list(pixel_batches([i.path for i in items], SIZE, SIZE)))
    model = keras.saving.load_model(checkpoint)
    labels = [model_labels(checkpoint).index(i.label) for i in items]
    return model.evaluate(pixels, np.array(labels), verbose=0, return_dict=True)["loss"]


def model_labels(checkpoint):
    with zipfile.ZipFile(checkpoint) as archive:
        return json.loads(archive.read("edgelite.json"))["labels"]


def test_continues_from_the_given_weights(trained_checkpoint, color_data, tmp_path):
    # A learning rate of zero keeps the weights where they start: every step's loss is then the
    # loss at step 0, and the new run's epoch must score exactly what the checkpoint scores.
    result = train("scratch", TrainOptions(data=color_data, out=tmp_path, epochs=1, batch_size=16, verbose=0,
                                           init_from=trained_checkpoint), {"lr": 0.0})
    [epoch] = result.history
    assert epoch["loss"] == pytest.approx(_keras_loss(trained_checkpoint, color_data / "train"), rel=1e-4)
    assert epoch["val_loss"] == pytest.approx(_keras_loss(trained_checkpoint, color_data / "validation"), rel=1e-4)
    fresh = train("scratch", TrainOptions(data=color_data, out=tmp_path / "fresh", epochs=1, batch_size=16,
                                          verbose=0), {"size": SIZE, "lr": 0.0})
    assert fresh.history[0]["loss"] > 2 * epoch["loss"]  # a new model would not score the same
    started = json.loads((tmp_path / "history.json").read_text())["started_from"]
    assert started == {"checkpoint": str(trained_checkpoint),
                       "sha256": hashlib.sha256(trained_checkpoint.read_bytes()).hexdigest()}
    with zipfile.ZipFile(result.best_checkpoint) as archive:
        assert json.loads(archive.read(TRAIN_ENTRY)) == {"family": "scratch", "started_from": started}


def test_the_homework_flow_from_the_command_line(trained_checkpoint, color_data, tmp_path):
    out = tmp_path / "augmented"
    result = CliRunner().invoke(cli, ["train", "scratch", "--data", str(color_data), "--out", str(out),
                                      "--init-from", str(trained_checkpoint), "--augment", "course",
                                      "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["config"]["size"] == SIZE  # taken from the checkpoint
    assert f"starting from the weights of {trained_checkpoint}" in result.stderr
    crafted = _rewrite(trained_checkpoint, tmp_path / "x.keras", TRAIN_ENTRY, lambda d: {**d, "family": "xception"})
    refused = CliRunner().invoke(cli, ["train", "scratch", "--data", str(color_data), "--out", str(tmp_path / "r"),
                                       "--init-from", str(crafted)])
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (f"error: --init-from {crafted} is a xception checkpoint; it cannot start a "
                                      "scratch run (use 'edgelite train xception --init-from ...')")
