import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgelite.errors import ModelFileError, OptionError
from edgelite.runtime import load
from tests.conftest import COLORS, artifact

ALL = [("tflite", "float32"), ("tflite", "float16"), ("tflite", "dynamic"), ("tflite", "int8"),
       ("onnx", "float32"), ("onnx", "int8")]


@pytest.mark.parametrize("fmt, precision", ALL)
def test_metadata_round_trip(artifacts, fmt, precision):
    model = load(artifact(artifacts, fmt, precision))
    meta = model.metadata
    assert meta is not None
    assert meta.labels == tuple(sorted(COLORS))
    assert (meta.input_height, meta.input_width) == (32, 32)
    assert meta.precision == precision
    assert meta.channel_order == "RGB"
    assert meta.input_scaling == "none" and meta.graph_scaling == "rescale"
    assert meta.output_kind == "softmax"
    assert meta.interpolation == "bilinear"
    assert len(meta.source_sha256) == 64
    assert meta.edgelite_version
    assert model.assumptions == []


@pytest.mark.parametrize("fmt, precision", ALL)
def test_predicts_the_colour(artifacts, color_data, fmt, precision):
    model = load(artifact(artifacts, fmt, precision))
    image = next((color_data / "validation" / "green").iterdir())
    ranked = model.predict(image, top_k=3)
    assert [p.label for p in ranked][0] == "green"
    assert sorted(p.label for p in ranked) == sorted(COLORS)
    assert ranked[0].score >= ranked[1].score >= ranked[2].score


def test_full_int8_model_takes_uint8_and_is_quantized_by_the_runtime(artifacts):
    model = load(artifact(artifacts, "tflite", "int8"))
    assert model.input.dtype == np.uint8 and model.input.quantized
    assert model.output.dtype == np.uint8 and model.output.quantized
    raw = model.run(np.full((2, 32, 32, 3), 128.0, dtype=np.float32))
    assert raw.dtype == np.float32
    assert raw.sum(axis=1) == pytest.approx([1.0, 1.0], abs=0.05)  # dequantized softmax


@pytest.mark.parametrize("fmt, precision", [("tflite", "int8"), ("onnx", "float32")])
def test_batch_equals_single(artifacts, color_data, fmt, precision):
    model = load(artifact(artifacts, fmt, precision))
    images = sorted((color_data / "validation" / "red").iterdir())[:5]
    batch = model.predict_batch(images, top_k=1)
    singles = [model.predict(image, top_k=1) for image in images]
    assert [b[0].label for b in batch] == [s[0].label for s in singles]
    assert [b[0].score for b in batch] == pytest.approx([s[0].score for s in singles], abs=1e-5)


@pytest.mark.parametrize("fmt, precision", [("tflite", "float32"), ("tflite", "int8"), ("onnx", "int8")])
def test_predict_is_thread_safe(artifacts, color_data, fmt, precision):
    model = load(artifact(artifacts, fmt, precision), threads=1)
    images = sorted((color_data / "validation").rglob("*.jpg"))[:12]
    expected = [model.predict(image, top_k=3) for image in images]
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(3):
            got = list(pool.map(lambda image: model.predict(image, top_k=3), images * 4))
            assert got == expected * 4


def test_foreign_model_without_metadata_loads_and_says_what_it_assumed(tmp_path):
    keras = pytest.importorskip("keras")
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))
    path = tmp_path / "foreign.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    loaded = load(path)
    assert loaded.metadata is None
    assert loaded.labels == ("class_0", "class_1", "class_2", "class_3")
    ranked = loaded.predict(np.zeros((8, 8, 3), dtype=np.uint8) + 50, top_k=4)
    assert sum(p.score for p in ranked) == pytest.approx(1.0, abs=1e-5)  # logits were softmaxed
    assert any("raw 0-255" in a for a in loaded.assumptions)
    assert any("class_0" in a for a in loaded.assumptions)
    assert "output kind unknown; treated the output as logits" in loaded.assumptions
    relabelled = load(path, labels=["a", "b", "c", "d"], scaling="rescale")
    assert relabelled.labels == ("a", "b", "c", "d")
    with pytest.raises(OptionError, match="3 labels given, but the model has 4 classes"):
        load(path, labels=["a", "b", "c"])


@pytest.mark.parametrize("name, content, message", [
    ("garbage.tflite", b"this is not a model at all", "not a valid .tflite file"),
    ("garbage.onnx", b"\x08\x07garbage\xff\xff", "not a valid .onnx file"),
    ("model.pt", b"whatever", "unknown model type .pt"),
])
def test_bad_model_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load(path)


@pytest.mark.parametrize("fmt, precision", [("tflite", "float32"), ("onnx", "float32")])
def test_truncated_artifacts_are_refused(artifacts, tmp_path, fmt, precision):
    data = artifact(artifacts, fmt, precision).read_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=f"not a valid .{fmt} file"):
        load(path)
