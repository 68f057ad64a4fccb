"""Multiply-accumulate count of a Keras model, from its layers' shapes.

Counts convolutions (plain, depthwise, separable) and dense layers, which hold
nearly all of an image classifier's arithmetic; pooling, normalisation and
activations are left out, as is usual for MAC counts. Needs no TensorFlow of
its own: it reads a model the caller has loaded.
"""

from __future__ import annotations

from math import prod
from typing import Any


def _dims(tensor: Any) -> tuple[int, ...]:
    return tuple(int(d) if d is not None else 1 for d in tensor.shape)


def layer_macs(layer: Any) -> int:
    """MACs of one call of `layer` on a batch of one (0 for layers without weights that multiply)."""
    kind = type(layer).__name__
    if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
        return 0
    inputs, outputs = _dims(layer.input), _dims(layer.output)
    if kind == "Dense":
        return prod(inputs[1:]) * int(layer.units)
    out_h, out_w, out_c = outputs[1:4]
    in_c = inputs[-1]
    k_h, k_w = layer.kernel_size
    if kind == "Conv2D":
        return out_h * out_w * out_c * k_h * k_w * in_c // int(getattr(layer, "groups", 1) or 1)
    multiplier = int(layer.depth_multiplier)
    depthwise = out_h * out_w * in_c * multiplier * k_h * k_w
    if kind == "DepthwiseConv2D":
        return depthwise
    return depthwise + out_h * out_w * in_c * multiplier * out_c


def count_macs(model: Any) -> int:
    """MACs of one image through `model`, nested models (e.g. a frozen base) included."""
    total = 0
    for layer in model.layers:
        if getattr(layer, "layers", None):
            total += count_macs(layer)
        else:
            total += layer_macs(layer)
    return total
