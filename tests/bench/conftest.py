"""Bench fixtures: a tiny Keras model with labels inside, three of its artifacts, and bad files.

Built directly with Keras (not through training) so the bench tests stay fast.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_dataset

LABELS = ("red", "green", "blue")
SIZE = 24


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory) -> Path:
    """Three colour classes, 4 images each, in one folder (class sub-folders)."""
    return make_dataset(tmp_path_factory.mktemp("bench-data"), {"images": 4}) / "images"


@pytest.fixture(scope="session")
def bench_models(bench_data, tmp_path_factory) -> dict[str, Path]:
    """keras (with labels), tflite_float32, tflite_int8, onnx_float32, plain (no metadata), garbage."""
    from edgelite.convert import ConvertOptions, convert
    from edgelite.runtime.metadata import CHECKPOINT_METADATA
    from edgelite.lazy import import_keras
    from edgelite.runtime.metadata import ArtifactMetadata

    tf, keras = import_keras("convert")
    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("bench-models")
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(len(LABELS), activation="softmax")])
    checkpoint = out / "tiny.keras"
    model.save(checkpoint)
    with zipfile.ZipFile(checkpoint, "a") as archive:  # labels inside, as edgelite's training stores them
        archive.writestr(CHECKPOINT_METADATA, ArtifactMetadata(LABELS, SIZE, SIZE).to_json())
    report = convert(checkpoint, out, ConvertOptions(calibration=bench_data, precisions=("float32", "int8"),
                                                     formats=("tflite", "onnx")))
    paths = {f"{a.format}_{a.precision}": a.path for a in report.artifacts}
    plain = out / "plain.tflite"
    plain.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    garbage = out / "garbage.tflite"
    garbage.write_bytes(b"TFL3 this is not a model" * 10)
    return {"keras": checkpoint, **paths, "plain": plain, "garbage": garbage}
