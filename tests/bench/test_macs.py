import pytest

from edgelite.bench.macs import count_macs


@pytest.fixture(scope="module")
def keras():
    from edgelite.lazy import import_keras

    return import_keras("convert")[1]


def test_conv_dense_and_separable_macs_by_hand(keras):
    inner = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.SeparableConv2D(6, 3, padding="same"),
                              keras.layers.DepthwiseConv2D(3)], name="inner")
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)                      # 8x8x4 out
    x = inner(x)                                                # nested model: counted too
    x = keras.layers.Dense(5)(keras.layers.Flatten()(x))        # 6x6x6 = 216 in
    model = keras.Model(inputs, x)
    conv = 8 * 8 * 4 * 3 * 3 * 3
    separable = 8 * 8 * 4 * 3 * 3 + 8 * 8 * 4 * 6
    depthwise = 6 * 6 * 6 * 3 * 3
    assert count_macs(model) == conv + separable + depthwise + 216 * 5
