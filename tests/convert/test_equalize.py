"""Cross-layer equalization of separable convolutions keeps the function and evens out the channels."""

import numpy as np
import pytest

from edgelite.convert.equalize import RANGE_STRIDE, equalize_separable

keras = pytest.importorskip("keras")


def _model(nested: bool):
    """Separable convolutions whose depthwise channels differ by up to ~100x in range, maybe in a nested model."""
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((12, 12, 4))
    x = keras.layers.SeparableConv2D(6, 3, padding="same", name="sep_a")(inner_in)
    x = keras.layers.SeparableConv2D(5, 3, strides=2, depth_multiplier=2, name="sep_b")(keras.layers.ReLU()(x))
    inner = keras.Model(inner_in, x, name="body")
    rng = np.random.default_rng(0)
    for layer in inner.layers:
        if isinstance(layer, keras.layers.SeparableConv2D):
            kernel = rng.normal(size=layer.depthwise_kernel.shape)
            kernel *= np.logspace(-2, 0, kernel.shape[2] * kernel.shape[3]).reshape(1, 1, *kernel.shape[2:])
            layer.depthwise_kernel.assign(kernel)
    if not nested:
        return inner
    inputs = keras.Input((12, 12, 4))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inner(keras.layers.Rescaling(1 / 255)(inputs))))
    return model


def _depthwise_ranges(model, layer_name, images):
    body = next((layer for layer in model.layers if layer.name == "body"), None)
    if body is not None:  # the nested case: run the outer layers, then look inside
        images = keras.Model(model.inputs[0], body._inbound_nodes[0].input_tensors[0])(images)
        model = body
    layer = model.get_layer(layer_name)
    feed = keras.Model(model.inputs[0], layer.input)(images)
    y = keras.ops.depthwise_conv(feed, layer.depthwise_kernel, strides=layer.strides, padding=layer.padding)
    return np.abs(keras.ops.convert_to_numpy(y)).max(axis=(0, 1, 2))


@pytest.mark.parametrize("nested", [False, True])
def test_equalization_keeps_the_function_and_evens_the_channels(nested):
    model = _model(nested)
    images = np.random.default_rng(1).uniform(0, 255 if nested else 1, (16, 12, 12, 4)).astype(np.float32)
    before = model.predict(images, verbose=0)
    equalized, count = equalize_separable(model, [images[:8], images[8:]])
    assert count == 2
    assert equalized is not model and np.abs(model.predict(images, verbose=0) - before).max() == 0  # untouched
    after = equalized.predict(images, verbose=0)
    assert np.abs(after - before).max() <= 1e-4 * np.abs(before).max()
    sampled = images[::RANGE_STRIDE]
    for name in ("sep_a", "sep_b"):
        spread = _depthwise_ranges(model, name, sampled)
        assert spread.max() / spread.min() > 5
        even = _depthwise_ranges(equalized, name, sampled)
        np.testing.assert_allclose(even, even.max(), rtol=1e-4)


def test_a_model_without_separable_convolutions_is_returned_as_it_is():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    assert equalize_separable(model, [np.zeros((1, 8, 8, 3), np.float32)]) == (model, 0)
