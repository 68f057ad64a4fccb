"""predict_iter: input order, errors as values, a bounded number of images in flight."""

import numpy as np
import pytest

from edgelite.errors import OptionError
from edgelite.runtime import load
from edgelite.runtime.model import READ_AHEAD_BATCHES
from tests.conftest import artifact


@pytest.fixture(scope="module")
def images(color_data):
    return sorted((color_data / "validation").rglob("*.jpg"))


@pytest.mark.parametrize("fmt, precision", [("tflite", "int8"), ("onnx", "float32")])
def test_results_come_in_input_order_with_errors_in_place(artifacts, images, tmp_path, fmt, precision):
    model = load(artifact(artifacts, fmt, precision))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a picture")
    sources = images[:4] + [bad] + images[4:9] + [tmp_path / "missing.png"] + images[9:12]
    results = list(model.predict_iter(sources, top_k=2, batch_size=3, workers=2))
    assert [r.source for r in results] == [str(s) for s in sources]
    assert [r.ok for r in results] == [s.exists() and s != bad for s in sources]
    assert results[4].error == f"{bad}: not an image Pillow can read" and list(results[4]) == []
    for source, result in zip(sources, results):
        if result.ok:
            single = model.predict(source, top_k=2)
            assert [p.label for p in result] == [p.label for p in single]
            np.testing.assert_allclose([p.score for p in result], [p.score for p in single], atol=1e-6)


def test_only_a_bounded_number_of_images_is_in_flight(artifacts, images):
    model = load(artifact(artifacts, "tflite", "float32"))
    batch_size, pulled, most = 4, [0], [0]

    def endless():  # a stream far longer than any window: only a bounded part of it may be read
        i = 0
        while True:
            pulled[0] += 1
            yield images[i % len(images)]
            i += 1

    returned = 0
    for result in model.predict_iter(endless(), batch_size=batch_size, workers=2):
        returned += 1
        most[0] = max(most[0], pulled[0] - returned)
        if returned == 200:
            break
    assert most[0] <= (READ_AHEAD_BATCHES + 1) * batch_size
    assert most[0] > batch_size  # it does read ahead of the batch being run


def test_predict_batch_keeps_the_good_images_when_one_is_bad(artifacts, images, tmp_path):
    model = load(artifact(artifacts, "onnx", "int8"))
    results = model.predict_batch([images[0], tmp_path / "gone.jpg", images[1]])
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == f"{tmp_path / 'gone.jpg'}: no such file"
    assert results[0].to_dict()["predictions"][0]["label"] == images[0].parent.name


@pytest.mark.parametrize("call, message", [
    (lambda m: m.predict_batch([]), "no images given"),
    (lambda m: list(m.predict_iter([], batch_size=0)), "batch size must be at least 1"),
    (lambda m: list(m.predict_iter([], workers=0)), "workers must be at least 1"),
    (lambda m: list(m.predict_iter([], top_k=0)), "top-k must be at least 1"),
])
def test_bad_arguments(artifacts, call, message):
    with pytest.raises(OptionError, match=message):
        call(load(artifact(artifacts, "tflite", "float32")))
