"""Training: every registry entry, learning, checkpoints that convert, resume after a kill, bad data."""

import json
import re
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.errors import DatasetError, OptionError
from edgelite.train import TrainOptions, families, get_family, parse_augment, train
from tests.conftest import COLORS, make_dataset

keras = pytest.importorskip("keras")


@pytest.mark.parametrize("family", [f.name for f in families()])
def test_every_registered_family_builds_and_trains(family, color_data, tmp_path):
    smoke = get_family(family).smoke
    result = train(family, TrainOptions(data=color_data, out=tmp_path, epochs=1, batch_size=16, verbose=0), smoke)
    assert len(result.history) == 1
    assert result.best_checkpoint.exists()
    assert result.best_checkpoint.name == f"{family}_01_{result.best_val_accuracy:.3f}.keras"
    model = keras.saving.load_model(result.best_checkpoint)
    assert model.input_shape == (None, smoke["size"], smoke["size"], 3)
    assert model.output_shape == (None, 3)
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["epochs"][0]["images_per_second"] > 0
    assert (tmp_path / "history.png").stat().st_size > 1000


def test_two_classes_get_one_sigmoid_unit(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 20, "validation": 6},
                        classes={"red": COLORS["red"], "blue": COLORS["blue"]})
    result = train("scratch", TrainOptions(data=data, out=tmp_path / "run", epochs=3, batch_size=8, verbose=0),
                   {"size": 32, "optimizer": "adam", "lr": 0.003})
    model = keras.saving.load_model(result.best_checkpoint)
    assert model.output_shape == (None, 1)
    assert model.layers[-1].activation.__name__ == "sigmoid"
    with zipfile.ZipFile(result.best_checkpoint) as archive:
        meta = json.loads(archive.read("edgelite.json"))
    assert meta["output_kind"] == "sigmoid" and meta["labels"] == ["blue", "red"]
    assert result.best_val_accuracy >= 0.9


def test_learns_a_synthetic_task_well_above_chance(trained_checkpoint):
    history = json.loads((trained_checkpoint.parent / "history.json").read_text())
    assert history["best_val_accuracy"] >= 0.9  # chance is 1/3
    assert history["best_checkpoint"] == trained_checkpoint.name


def test_saved_model_agrees_through_keras_and_through_convert_plus_runtime(trained_checkpoint, artifacts, color_data):
    from edgelite.runtime import load
    from edgelite.runtime.folder import pixel_batches, read_folder

    paths = [i.path for i in read_folder(color_data / "validation")]
    pixels = np.concatenate(list(pixel_batches(paths, 32, 32)))
    expected = keras.saving.load_model(trained_checkpoint).predict(pixels, verbose=0)
    for report in artifacts.artifacts:
        got = load(report.path).run(pixels)
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all(), report.path.name
        if report.precision == "float32":
            assert np.abs(got - expected).max() < 1e-4


def test_augmentation_presets_and_parsing():
    course = parse_augment("course")
    assert (course.rotation, course.width_shift, course.height_shift, course.shear, course.zoom,
            course.horizontal_flip) == (30, 10, 10, 10, 0.1, True)
    custom = parse_augment("rotation=15,shift=5,flip")
    assert (custom.rotation, custom.width_shift, custom.height_shift, custom.horizontal_flip) == (15, 5, 5, True)
    assert not parse_augment("none").enabled
    with pytest.raises(OptionError, match="unknown augmentation 'blur'"):
        parse_augment("blur=3")


def test_augmented_training_keeps_augmentation_out_of_the_saved_model(color_data, tmp_path):
    result = train("scratch", TrainOptions(data=color_data, out=tmp_path, epochs=1, batch_size=16, verbose=0,
                                           augment=parse_augment("course")), {"size": 32})
    model = keras.saving.load_model(result.best_checkpoint)
    assert not any("random" in layer.name or layer.name == "augmentation" for layer in model.layers)


@pytest.mark.parametrize("layout, message", [
    ("missing", "no such folder"),
    ("single", "only one class (red); a classifier needs at least two"),
    ("empty-class", "class folder has no images"),
    ("mismatch", "class folders differ between train and validation: only in train ['green']"),
    ("no-validation", "has train/ but no validation/ folder"),
])
def test_bad_datasets(tmp_path, layout, message):
    data = tmp_path / "data"
    if layout == "single":
        make_dataset(data, {"train": 3, "validation": 2}, classes={"red": COLORS["red"]})
    elif layout == "empty-class":
        make_dataset(data, {"train": 3, "validation": 2})
        for image in (data / "train" / "blue").iterdir():
            image.unlink()
    elif layout == "mismatch":
        make_dataset(data, {"train": 3, "validation": 2})
        for image in (data / "validation" / "green").iterdir():
            image.unlink()
        (data / "validation" / "green").rmdir()
    elif layout == "no-validation":
        make_dataset(data, {"train": 3})
    with pytest.raises(DatasetError, match=re.escape(message)):
        train("scratch", TrainOptions(data=data, out=tmp_path / "run", epochs=1, verbose=0), {"size": 32})


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 6, "validation": 3})
    (data / "train" / "red" / "broken.jpg").write_text("not an image")
    (data / "train" / "red" / "notes.txt").write_text("a non-image file is skipped too")
    lines = []
    result = train("scratch", TrainOptions(data=data, out=tmp_path / "run", epochs=1, verbose=0), {"size": 32},
                   log=lines.append)
    assert "skipped 2 unreadable file(s)" in result.dataset
    assert sum(line.startswith("skipped: ") and "not an image Pillow can read" in line for line in lines) == 2
    assert "18 training and 9 validation images" in result.dataset


def test_val_split_on_a_folder_of_classes(tmp_path):
    data = make_dataset(tmp_path / "data", {"all": 10})
    result = train("scratch", TrainOptions(data=data / "all", out=tmp_path / "run", epochs=1, verbose=0,
                                           val_split=0.2), {"size": 32})
    assert "24 training and 6 validation images" in result.dataset


def test_unknown_config_option_is_rejected(color_data, tmp_path):
    with pytest.raises(OptionError, match="scratch has no option inner"):
        train("scratch", TrainOptions(data=color_data, out=tmp_path, epochs=1), {"inner": 10})


def test_imagenet_weights_offline_names_the_alternatives(color_data, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "Xception", offline)
    with pytest.raises(OptionError, match="pass --weights FILE .* or --weights none"):
        train("xception", TrainOptions(data=color_data, out=tmp_path, epochs=1, verbose=0), {"size": 71})


def test_a_run_folder_is_not_overwritten_without_resume(color_data, tmp_path):
    train("scratch", TrainOptions(data=color_data, out=tmp_path, epochs=1, verbose=0), {"size": 32})
    with pytest.raises(OptionError, match="holds an earlier run; pass --resume"):
        train("scratch", TrainOptions(data=color_data, out=tmp_path, epochs=1, verbose=0), {"size": 32})


def test_resume_after_sigkill_loses_no_completed_epoch(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 150, "validation": 10})
    out = tmp_path / "run"
    command = [sys.executable, "-m", "edgelite", "train", "scratch", "--data", str(data), "--out", str(out),
               "--size", "48", "--epochs", "8", "--batch-size", "4", "--optimizer", "adam", "--lr", "0.001"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    history_file = out / "history.json"
    deadline = time.time() + 240
    seen = []
    while time.time() < deadline and process.poll() is None:
        if history_file.exists():
            seen = json.loads(history_file.read_text())["epochs"]
            if len(seen) >= 2:
                time.sleep(0.3)  # into the next epoch
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(seen) >= 2, "training did not reach two epochs in time"
    before = json.loads(history_file.read_text())["epochs"]
    assert len(before) < 8, "the run finished before it could be killed"

    result = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    after = json.loads(history_file.read_text())["epochs"]
    assert [h["epoch"] for h in after] == list(range(1, 9))
    assert after[:len(before)] == before  # every epoch finished before the kill is kept as it was
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".*.keras"))


def test_sweep_trains_each_variant_and_names_the_winner(color_data, tmp_path):
    result = CliRunner().invoke(cli, ["train", "scratch", "--data", str(color_data), "--out", str(tmp_path),
                                      "--epochs", "2", "--size", "32", "--optimizer", "adam",
                                      "--sweep", "lr=0.00001,0.003"])
    assert result.exit_code == 0, result.output
    assert "winner: lr=0.003" in result.stdout
    summary = json.loads((tmp_path / "sweep_lr.json").read_text())
    assert [v["value"] for v in summary["variants"]] == [0.00001, 0.003]
    assert all(len(v["curve"]) == 2 for v in summary["variants"])
    assert (tmp_path / "sweep_lr.png").stat().st_size > 1000
    assert (tmp_path / "lr_0.003" / "history.json").exists()
