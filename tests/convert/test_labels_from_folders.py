"""A checkpoint without labels takes them from the calibration or check folder when the class count matches."""

import re

import pytest

from edgelite.convert import ConvertOptions, convert
from edgelite.errors import MissingLabelsError
from edgelite.runtime import load
from tests.conftest import COLORS, make_dataset

keras = pytest.importorskip("keras")


def _foreign_checkpoint(path, outputs: int):
    """A .keras file saved by plain Keras: no edgelite metadata, so no labels; scaling inside its graph."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    activation = "sigmoid" if outputs == 1 else "softmax"
    keras.Model(inputs, keras.layers.Dense(outputs, activation=activation)(x)).save(path)
    return path


FLOAT_TFLITE = {"formats": ("tflite",), "precisions": ("float32",)}


def test_labels_come_from_the_calibration_folders_in_sorted_order(tmp_path, color_data):
    checkpoint = _foreign_checkpoint(tmp_path / "foreign.keras", 3)
    report = convert(checkpoint, tmp_path / "out", ConvertOptions(calibration=color_data / "train", **FLOAT_TFLITE))
    assert load(report.artifacts[0].path).labels == ("blue", "green", "red")
    assert report.notes == [f"labels taken from the 3 class folders of {color_data / 'train'} in sorted order "
                            "(Keras's image_dataset_from_directory order): blue, green, red"]
    assert report.artifacts[0].parity.accuracy is not None  # the check images now have known classes


def test_one_sigmoid_unit_takes_two_class_folders(tmp_path):
    data = make_dataset(tmp_path / "data", {"validation": 2}, classes={"dog": COLORS["red"], "cat": COLORS["blue"]})
    checkpoint = _foreign_checkpoint(tmp_path / "binary.keras", 1)
    report = convert(checkpoint, tmp_path / "out", ConvertOptions(check=data / "validation", **FLOAT_TFLITE))
    assert load(report.artifacts[0].path).labels == ("cat", "dog")


def test_check_folder_is_used_when_the_calibration_folder_is_flat(tmp_path, color_data):
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted((color_data / "train" / "red").iterdir())[:3]:
        (flat / image.name).write_bytes(image.read_bytes())
    checkpoint = _foreign_checkpoint(tmp_path / "foreign.keras", 3)
    report = convert(checkpoint, tmp_path / "out", ConvertOptions(
        formats=("tflite",), precisions=("float32",), calibration=flat, check=color_data / "validation"))
    assert load(report.artifacts[0].path).labels == ("blue", "green", "red")
    assert f"class folders of {color_data / 'validation'}" in report.notes[0]


def test_a_folder_with_another_class_count_is_refused(tmp_path):
    data = make_dataset(tmp_path / "data", {"validation": 2}, classes={"red": COLORS["red"], "blue": COLORS["blue"]})
    checkpoint = _foreign_checkpoint(tmp_path / "foreign.keras", 3)
    message = (f"foreign.keras does not record its class labels ({data / 'validation'} has 2 class folders, "
               "the model has 3 classes); pass --labels a,b,c or a labels file")
    with pytest.raises(MissingLabelsError, match=re.escape(message)):
        convert(checkpoint, tmp_path / "out", ConvertOptions(check=data / "validation", **FLOAT_TFLITE))
    assert not (tmp_path / "out").exists()


def test_given_labels_win_over_the_folders(tmp_path, color_data):
    checkpoint = _foreign_checkpoint(tmp_path / "foreign.keras", 3)
    report = convert(checkpoint, tmp_path / "out", ConvertOptions(
        calibration=color_data / "train", labels=("a", "b", "c"), **FLOAT_TFLITE))
    assert load(report.artifacts[0].path).labels == ("a", "b", "c")
    assert report.notes == []
