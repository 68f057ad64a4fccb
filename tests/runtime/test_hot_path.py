"""The per-image hot path of the runtime (issue 22): input conversion, uint8 decoding, ranking, header hook."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from edgelite.errors import ImageError
from edgelite.runtime import load, preprocess
from edgelite.runtime.backends import TensorSpec
from edgelite.runtime.input_tensor import InputTensor
from edgelite.runtime.predictions import rank
from edgelite.runtime.preprocess import decoded_bytes, scaling_factors
from tests.conftest import COLORS, artifact, make_image

ALL = [("tflite", "float32"), ("tflite", "float16"), ("tflite", "dynamic"), ("tflite", "int8"),
       ("onnx", "float32"), ("onnx", "int8")]
SPECS = [("uint8", 1.0, 0), ("int8", 1.0, -128), ("int8", 0.0078125, -1), ("uint8", 1 / 255, 0),
         ("int8", 0.01865, 3), ("float32", 0.0, 0), ("float16", 0.0, 0)]


def _reference(pixels: np.ndarray, spec: TensorSpec, scaling: str) -> np.ndarray:
    """What Model.run fed the model before issue 22: whole-array numpy steps, each into a new array."""
    scale, offset = scaling_factors(scaling)
    batch = (pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)
    if spec.quantized:
        info = np.iinfo(spec.dtype)
        q = np.round(batch / np.float32(spec.scale)) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(spec.dtype)
    return batch.astype(spec.dtype)


@pytest.mark.parametrize("dtype, scale, zero_point", SPECS)
@pytest.mark.parametrize("scaling", ["none", "rescale", "xception", "imagenet"])
def test_the_input_tensor_holds_the_same_numbers_as_the_whole_array_steps(dtype, scale, zero_point, scaling):
    spec = TensorSpec("image", (-1, 6, 5, 3), np.dtype(dtype), scale, zero_point)
    convert = InputTensor(spec, *scaling_factors(scaling))
    rng = np.random.default_rng(0)
    sources = [rng.integers(0, 256, (2, 6, 5, 3)).astype(np.uint8),
               rng.integers(0, 256, (2, 6, 5, 3)).astype(np.float32),
               (rng.random((2, 6, 5, 3)) * 300 - 20).astype(np.float32), rng.random((2, 6, 5, 3)) * 255,
               np.full((2, 6, 5, 3), 127.5, np.float32), rng.integers(-5, 300, (2, 6, 5, 3))]
    for pixels in sources:
        expected = _reference(pixels, spec, scaling)
        first = convert(pixels).copy()
        again = convert(pixels)  # the reused buffer gives the same numbers
        assert first.dtype == expected.dtype
        np.testing.assert_array_equal(first, expected)
        np.testing.assert_array_equal(again, expected)
    larger = np.concatenate([sources[1], sources[2]])  # the buffer grows, then a smaller batch uses its front
    np.testing.assert_array_equal(convert(larger), _reference(larger, spec, scaling))
    np.testing.assert_array_equal(convert(sources[3][:1]), _reference(sources[3][:1], spec, scaling))


def test_uint8_pixels_for_a_raw_uint8_input_go_in_without_a_copy():
    convert = InputTensor(TensorSpec("image", (-1, 4, 4, 3), np.dtype("uint8"), 1.0, 0), 1.0, 0.0)
    pixels = np.arange(96, dtype=np.uint8).reshape(2, 4, 4, 3)
    assert np.shares_memory(convert(pixels), pixels)


@pytest.mark.parametrize("fmt, precision", ALL)
def test_uint8_and_float32_pixels_give_the_same_output_and_results_are_not_reused(artifacts, fmt, precision):
    model = load(artifact(artifacts, fmt, precision))
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (3, model.height, model.width, 3)).astype(np.uint8)
    as_float = model.run(pixels.astype(np.float32))
    as_uint8 = model.run(pixels)
    np.testing.assert_array_equal(as_float, as_uint8)
    read_only = pixels.copy()
    read_only.setflags(write=False)  # what np.asarray gives for a decoded PIL image
    np.testing.assert_array_equal(model.run(read_only), as_uint8)
    kept = as_uint8.copy()
    model.run(255 - pixels)
    np.testing.assert_array_equal(as_uint8, kept)  # an earlier result is not a buffer the next call reuses


def test_threads_running_one_model_at_once_each_get_their_own_answers(artifacts):
    model = load(artifact(artifacts, "tflite", "int8"))
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 256, (n, model.height, model.width, 3)).astype(np.uint8) for n in (1, 2, 3, 1)]
    expected = [model.run(batch) for batch in batches]
    failures: list[str] = []

    def work(index: int) -> None:
        for _ in range(20):
            if not np.array_equal(model.run(batches[index]), expected[index]):
                failures.append(f"thread {index}")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_pixel_in_a_reused_buffer_batch_is_still_refused(artifacts, bad):
    model = load(artifact(artifacts, "tflite", "int8"))
    pixels = np.full((2, model.height, model.width, 3), 10.0, np.float32)
    model.run(pixels)  # the buffers for this shape exist now
    pixels[1, 3, 4, 2] = bad
    with pytest.raises(ImageError, match="the pixels hold NaN or infinite values; expected raw 0-255 RGB"):
        model.run(pixels)


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    make_image(COLORS["green"], np.random.default_rng(3), size=64).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_as_uint8_gives_the_float_pixels_as_uint8_and_arrays_at_the_input_size_stay_float():
    data = _jpeg()
    as_float = preprocess(data, 20, 24)
    as_uint8 = preprocess(data, 20, 24, as_uint8=True)
    assert as_float.pixels.dtype == np.float32 and as_uint8.pixels.dtype == np.uint8
    np.testing.assert_array_equal(as_uint8.pixels.astype(np.float32), as_float.pixels)
    fractional = np.full((20, 24, 3), 10.25, np.float32)
    assert preprocess(fractional, 20, 24, as_uint8=True).pixels.dtype == np.float32


def test_on_header_hears_the_decoded_size_before_decoding_and_can_stop_it():
    data = _jpeg()
    heard: list[int] = []
    preprocess(data, 20, 24, on_header=heard.append)
    assert heard == [decoded_bytes(data)]

    class Stop(Exception):
        pass

    def refuse(size: int) -> None:
        raise Stop(size)

    with pytest.raises(Stop):
        preprocess(data, 20, 24, on_header=refuse)
    with pytest.raises(ImageError, match="not an image"):  # a bad image fails before the hook is asked
        preprocess(b"not an image", 20, 24, on_header=refuse)


def test_rank_with_a_precomputed_order_is_rank_without_one():
    scores = np.array([[0.1, 0.5, 0.5, 0.2], [0.7, 0.1, 0.1, 0.1]], np.float32)
    labels = ["a", "b", "c", "d"]
    order = np.argsort(-scores, axis=1, kind="stable")
    assert rank(scores, labels, 3, order) == rank(scores, labels, 3)
    assert [p.label for p in rank(scores, labels, 3)[0]] == ["b", "c", "d"]  # ties keep class order
