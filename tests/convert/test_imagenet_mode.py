"""The imagenet preprocessing mode (torchvision's x/255, minus mean, over std), with --mean/--std."""

import numpy as np
import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.convert import ConvertOptions, convert
from edgelite.convert.source import normalization
from edgelite.errors import OptionError
from edgelite.runtime import load
from edgelite.runtime.preprocess import scale_pixels

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def test_scale_pixels_imagenet_is_torchvisions_recipe_per_channel():
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    before = pixels.copy()
    expected = (pixels / 255.0 - MEAN) / STD
    assert np.abs(scale_pixels(pixels, "imagenet") - expected).max() < 1e-5
    assert np.array_equal(pixels, before)


def test_mean_and_std_override_imagenets():
    scale, offset = normalization("imagenet", (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    assert np.allclose(np.array(scale) * 255, [4, 2, 1]) and np.allclose(offset, [-2, -1, -0.5])
    with pytest.raises(OptionError, match="--mean and --std go with --preprocess imagenet"):
        ConvertOptions(precisions=("float32",), preprocess="rescale", mean=(0.5, 0.5, 0.5))
    with pytest.raises(OptionError, match=r"--std takes 3 values \(R,G,B\), got 2"):
        ConvertOptions(precisions=("float32",), preprocess="imagenet", std=(0.5, 0.5))
    with pytest.raises(OptionError, match="--std values must be above 0"):
        ConvertOptions(precisions=("float32",), preprocess="imagenet", std=(0.5, 0.0, 0.5))


def test_cli_mean_must_be_numbers(tmp_path):
    result = CliRunner().invoke(cli, ["convert", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "out"),
                                      "--preprocess", "imagenet", "--mean", "a,b,c"])
    assert result.exit_code == 2
    assert "expected numbers as R,G,B, got 'a,b,c'" in result.output


def test_a_keras_h5_with_imagenet_preprocessing_gets_it_inside_the_graph(tmp_path, color_data):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "m.h5")
    report = convert(tmp_path / "m.h5", tmp_path / "out", ConvertOptions(
        formats=("tflite",), precisions=("float32",), check=color_data / "validation",
        labels=("blue", "green", "red"), preprocess="imagenet", mean=(0.5, 0.4, 0.3)))
    assert report.notes == ["scaling imagenet (mean 0.5,0.4,0.3, std 0.229,0.224,0.225) put inside the graph"]
    loaded = load(report.artifacts[0].path)
    assert loaded.metadata.graph_scaling == "imagenet"
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    expected = model.predict((pixels / 255.0 - np.array([0.5, 0.4, 0.3])) / STD, verbose=0)
    assert np.abs(loaded.run(pixels) - expected).max() < 1e-4
