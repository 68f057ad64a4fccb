"""Equalize the channels of each separable convolution's depthwise output before int8 quantization.

A Keras `SeparableConv2D` is a depthwise convolution and a 1x1 pointwise
convolution with nothing in between. Both converters keep the tensor between
them and quantize it per tensor: one int8 scale for every channel. Without a
batch norm there, its channels span very different ranges, so the narrow ones
get a few quantization steps only. On the trained xception_mini, LiteRT's and
onnxruntime's debuggers (`edgelite convert --explain-int8`) both put these
depthwise outputs at the top of the error list (26-31 dB SQNR, all else above).

Cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction", 2019) fixes it without changing the function:
channel c of the depthwise kernel is multiplied by s_c and input channel c of the
pointwise kernel divided by s_c, with s_c = R / r_c, where r_c is the channel's
largest |value| on calibration images and R the largest of them. Every channel
then spans the full int8 range. Float outputs move by float rounding only.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from edgelite.lazy import import_keras

RANGE_IMAGES = 128  # calibration images the channel ranges are measured on: every RANGE_STRIDE-th one
RANGE_STRIDE = 4  # calibration folders are read in path order, so by class: spread the sample
MAX_SCALE = 1e3  # a channel that is (almost) always zero is scaled up at most this much


def equalize_separable(model: Any, batches: Iterable[np.ndarray]) -> tuple[Any, int]:
    """A copy of `model` whose SeparableConv2D depthwise outputs use the same range in every channel.

    Args:
        model: a Keras model (not changed).
        batches: (N, H, W, 3) float32 batches of the model's input; every
            RANGE_STRIDE-th image, up to RANGE_IMAGES, measures the channel ranges.

    Returns:
        The equalized copy (or `model` itself when it has no SeparableConv2D) and
        how many layers were equalized.
    """
    _, keras = import_keras("convert")
    if not _separable_layers(model, keras):
        return model, 0
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    layers = _separable_layers(copy, keras)
    ranges = _depthwise_ranges(copy, batches, keras)
    equalized = 0
    for layer in layers:
        channel_range = ranges[id(layer)]
        if not channel_range.max() > 0:  # a layer whose output is all zero: nothing to even out
            continue
        depthwise, pointwise = (keras.ops.convert_to_numpy(w) for w in (layer.depthwise_kernel,
                                                                        layer.pointwise_kernel))
        scale = channel_range.max() / np.maximum(channel_range, channel_range.max() / MAX_SCALE)
        layer.depthwise_kernel.assign(depthwise * scale.reshape(1, 1, *depthwise.shape[2:]))
        layer.pointwise_kernel.assign(pointwise / scale.reshape(1, 1, -1, 1))
        equalized += 1
    copy(np.zeros((1, *copy.input_shape[1:]), np.float32), training=False)  # exporters need a called model
    return copy, equalized


def _separable_layers(model: Any, keras) -> list:
    """Every channels-last SeparableConv2D in `model`, nested models included, in order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.SeparableConv2D) and layer.data_format == "channels_last":
            found.append(layer)
        elif hasattr(layer, "layers"):
            found += _separable_layers(layer, keras)
    return found


def _depthwise_ranges(model: Any, batches: Iterable[np.ndarray], keras) -> dict[int, np.ndarray]:
    """id(layer) -> the largest |depthwise output| of each channel on the sampled images."""
    ranges: dict[int, np.ndarray] = {}
    seen = offset = 0
    for batch in batches:
        picked = np.asarray(batch, dtype=np.float32)[(-offset) % RANGE_STRIDE::RANGE_STRIDE][:RANGE_IMAGES - seen]
        offset += len(batch)
        if len(picked):
            _collect_ranges(model, picked, ranges, keras)
            seen += len(picked)
        if seen >= RANGE_IMAGES:
            break
    return ranges


def _collect_ranges(model: Any, values: Any, ranges: dict[int, np.ndarray], keras) -> None:
    """Run `model` on `values` up to each separable layer and each nested model, and recurse."""
    separable = [layer for layer in model.layers
                 if isinstance(layer, keras.layers.SeparableConv2D) and layer.data_format == "channels_last"]
    nested = [layer for layer in model.layers if hasattr(layer, "layers")]
    if not separable and not nested:
        return
    # The tensor feeding each layer in this model's graph. A nested model's `.input` is its own
    # Input, not what feeds it here, so the feed is read from the layer's (single) call.
    feeds = [layer._inbound_nodes[0].input_tensors[0] for layer in separable + nested]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    outputs = keras.Model(inputs, feeds)(values, training=False)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    for layer, x in zip(separable, outputs):
        y = keras.ops.depthwise_conv(x, layer.depthwise_kernel, strides=layer.strides, padding=layer.padding,
                                     dilation_rate=layer.dilation_rate)
        largest = keras.ops.convert_to_numpy(keras.ops.max(keras.ops.abs(y), axis=(0, 1, 2)))
        ranges[id(layer)] = np.maximum(ranges.get(id(layer), 0.0), largest)
    for layer, x in zip(nested, outputs[len(separable):]):
        _collect_ranges(layer, x, ranges, keras)
