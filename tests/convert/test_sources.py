"""Checkpoints other than edgelite's own: Keras 2 style .h5 with outside preprocessing, SavedModel."""

import dataclasses

import numpy as np
import pytest

from edgelite.convert import ConvertOptions, convert
from edgelite.errors import ModelFileError, OptionError
from edgelite.runtime import load

keras = pytest.importorskip("keras")


def _course_style_model():
    """A model that expects x/127.5-1 outside its graph, as the course's Xception did."""
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_h5_with_xception_preprocessing_gets_scaling_inside_the_artifact(tmp_path, color_data):
    model = _course_style_model()
    h5 = tmp_path / "course.h5"
    model.save(h5)
    report = convert(h5, tmp_path / "out", ConvertOptions(
        formats=("tflite",), precisions=("float32",), check=color_data / "validation",
        labels=("blue", "green", "red"), preprocess="xception", interpolation="nearest"))
    assert report.notes == ["scaling xception put inside the graph"]
    assert report.artifacts[0].parity.max_abs_diff < 1e-5
    loaded = load(report.artifacts[0].path)
    assert loaded.metadata.graph_scaling == "xception"
    assert loaded.metadata.interpolation == "nearest"
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    expected = model.predict(pixels / 127.5 - 1, verbose=0)
    assert np.abs(loaded.run(pixels) - expected).max() < 1e-5


def test_h5_without_preprocessing_or_labels_asks_for_them(tmp_path, color_data):
    h5 = tmp_path / "course.h5"
    _course_style_model().save(h5)
    options = ConvertOptions(formats=("onnx",), precisions=("float32",), check=color_data / "validation")
    with pytest.raises(OptionError, match="does not say how its pixels are scaled; pass --preprocess"):
        convert(h5, tmp_path / "out", options)
    # a flat folder has no class folders to take labels from (tests/convert/test_labels_from_folders.py)
    with pytest.raises(OptionError, match="does not record its class labels .*; pass --labels"):
        convert(h5, tmp_path / "out", ConvertOptions(formats=("onnx",), precisions=("float32",),
                                                     check=color_data / "validation" / "red", preprocess="rescale"))
    assert not (tmp_path / "out").exists()


def test_saved_model_directory(tmp_path, color_data):
    model = _course_style_model()
    saved = tmp_path / "saved"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    report = convert(saved, tmp_path / "out", ConvertOptions(
        formats=("tflite",), precisions=("float32",), check=color_data / "validation",
        labels=("blue", "green", "red"), preprocess="rescale"))
    assert report.artifacts[0].parity.max_abs_diff < 1e-5


def test_a_file_that_is_not_a_model(tmp_path, color_data):
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="fake.keras: not a Keras model edgelite can load"):
        convert(fake, tmp_path / "out", ConvertOptions(precisions=("float32",), check=color_data / "validation"))
    assert not (tmp_path / "out").exists()


def test_failure_midway_leaves_the_out_folder_as_it_was(tmp_path, trained_checkpoint, color_data, monkeypatch):
    import edgelite.convert as convert_module

    def broken(source, path, precision, calibration, options):
        path.write_bytes(b"half an onnx file")
        raise ModelFileError("simulated exporter failure")

    monkeypatch.setitem(convert_module.OUTPUT_FORMATS, "onnx",
                        dataclasses.replace(convert_module.OUTPUT_FORMATS["onnx"], exporter=broken))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ModelFileError, match="simulated exporter failure"):
        convert(trained_checkpoint, out, ConvertOptions(precisions=("float32",), check=color_data / "validation"))
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("kwargs, message", [
    ({"precisions": ("float64",)}, "unknown precision 'float64'"),
    ({"formats": ("coreml",)}, "unknown format 'coreml'"),
    ({"formats": ("onnx",), "precisions": ("float16",)}, "precision float16 is not available in onnx"),
    ({"precisions": ("int8",)}, "int8 needs real calibration images: pass --calibration DIR"),
    ({"integer_io": "int16"}, "unknown integer input/output type 'int16'"),
])
def test_option_errors(kwargs, message):
    with pytest.raises(OptionError, match=message):
        ConvertOptions(**kwargs)
