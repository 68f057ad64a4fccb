"""Issue 18: does a short quantization-aware fine-tune lift int8 agreement where post-training tools did not?

    python benchmarks/qat_study.py CHECKPOINT --out DIR [--epochs 2] [--learning-rate 1e-5]

Fine-tunes a copy of CHECKPOINT (a trained edgelite Keras checkpoint) on the
clothing-small training photos with int8 simulated in the forward pass, the
gradients passing straight through the rounding (Jacob et al. 2018, "Quantization
and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference"): weights rounded per output channel to 8 bits, the activations that
the int8 graph keeps as int8 tensors (after each ReLU, each residual add, each
batch norm not followed by a ReLU, each separable convolution's depthwise half,
the pooled features and the logits) rounded to 8 bits between moving min and max.
Batch norm statistics stay frozen. The fake rounding is then dropped: the result
is an ordinary checkpoint with the same layers and new weights, written to DIR
with CHECKPOINT's edgelite metadata. Converting it and CHECKPOINT with the same
`edgelite convert` command then shows whether its int8 artifacts agree better
with their own float model. Prints JSON with the machine and the fine-tune's
validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small"))
EMA = 0.99  # moving min/max of an activation, as TensorFlow's QAT keeps them


def read_split(folder: Path, labels: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every photo of a split as uint8 pixels decoded as edgelite decodes them, and its class index."""
    from edgelite.runtime.folder import IMAGE_SUFFIXES
    from edgelite.runtime.preprocess import preprocess

    pixels, classes = [], []
    for index, label in enumerate(labels):
        for path in sorted((folder / label).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                pixels.append(preprocess(path, size, size, as_uint8=True).pixels)
                classes.append(index)
    return np.stack(pixels), np.array(classes)


def build_quantized(model, weight_bits: int = 8):
    """A model computing `model` with int8 rounding simulated; it shares `model`'s variables.

    `weight_bits` 7 simulates onnxruntime's `reduce_range` weights (what edgelite's
    ONNX int8 uses on CPUs without VNNI).
    """
    top = float(2 ** (weight_bits - 1) - 1)
    import keras
    from keras import ops

    def round_through(x, rounded):  # forward: the rounded value; backward: identity
        return x + ops.stop_gradient(rounded - x)

    def weights8(kernel, axis):
        reduce = tuple(i for i in range(len(kernel.shape)) if i != axis % len(kernel.shape))
        scale = ops.maximum(ops.max(ops.abs(kernel), axis=reduce, keepdims=True), 1e-8) / top
        return round_through(kernel, ops.clip(ops.round(kernel / scale), -top, top) * scale)

    class Activation8(keras.layers.Layer):
        """Rounds a tensor to 8 bits between its moving min and max (min <= 0 <= max, as converters do)."""

        def build(self, shape):
            self.low = self.add_weight(shape=(), initializer="zeros", trainable=False, name="low")
            self.high = self.add_weight(shape=(), initializer="zeros", trainable=False, name="high")
            self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, name="seen")

        def call(self, x, training=False):
            if training:
                low, high = ops.minimum(ops.min(x), 0.0), ops.maximum(ops.max(x), 0.0)
                first = ops.equal(self.seen, 0.0)
                self.low.assign(ops.where(first, low, EMA * self.low + (1 - EMA) * low))
                self.high.assign(ops.where(first, high, EMA * self.high + (1 - EMA) * high))
                self.seen.assign(1.0)
            scale = ops.maximum(self.high - self.low, 1e-8) / 255.0
            zero = ops.round(-self.low / scale)
            levels = ops.clip(ops.round(x / scale) + zero, 0, 255)
            return round_through(x, (levels - zero) * scale)

    class Quantized(keras.layers.Layer):
        """One layer of `model` run with its weights and (where the int8 graph has one) its output rounded."""

        def __init__(self, layer, round_output: bool, **kwargs):
            super().__init__(name=f"{layer.name}_q", **kwargs)
            self.layer = layer
            self.output8 = Activation8(name=f"{layer.name}_out8") if round_output else None
            self.middle8 = Activation8(name=f"{layer.name}_mid8") \
                if isinstance(layer, keras.layers.SeparableConv2D) else None

        def call(self, x, training=False, mask=None):  # masks: none in these image models
            layer = self.layer
            if isinstance(layer, keras.layers.SeparableConv2D):
                y = ops.depthwise_conv(x, weights8(layer.depthwise_kernel, 2), layer.strides, layer.padding,
                                       dilation_rate=layer.dilation_rate)
                y = self.middle8(y, training=training)
                y = ops.conv(y, weights8(layer.pointwise_kernel, -1), 1, "valid")
            elif isinstance(layer, keras.layers.Conv2D):
                y = ops.conv(x, weights8(layer.kernel, -1), layer.strides, layer.padding,
                             dilation_rate=layer.dilation_rate)
            elif isinstance(layer, keras.layers.Dense):
                y = ops.matmul(x, weights8(layer.kernel, -1))
            else:  # batch norm frozen, pooling, adds, activations, dropout: as they are
                return self._rounded(layer(x, training=training and not isinstance(
                    layer, keras.layers.BatchNormalization)), training)
            if layer.use_bias:
                y = y + layer.bias
            if isinstance(layer, keras.layers.Dense) and layer.activation is not keras.activations.linear:
                return layer.activation(self._rounded(y, training))  # the logits are the int8 tensor
            return self._rounded(layer.activation(y), training)

        def _rounded(self, y, training):
            return self.output8(y, training=training) if self.output8 is not None else y

    consumers: dict[str, list] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                consumers.setdefault(tensor._keras_history.operation.name, []).append(layer)

    def rounds_output(layer) -> bool:
        after = consumers.get(layer.name, [])
        if isinstance(layer, keras.layers.BatchNormalization):  # fused into the ReLU after it, if there is one
            return not (len(after) == 1 and isinstance(after[0], keras.layers.Activation))
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D)):
            return not (len(after) == 1 and isinstance(after[0], keras.layers.BatchNormalization))
        return isinstance(layer, (keras.layers.Activation, keras.layers.Add, keras.layers.Dense,
                                  keras.layers.GlobalAveragePooling2D))

    def wrap(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        return Quantized(layer, rounds_output(layer))

    return keras.models.clone_model(model, clone_function=wrap)


def write_checkpoint(model, source: Path, out: Path) -> None:
    """Save `model` (the plain layers, new weights) with `source`'s edgelite metadata members."""
    model.save(out)
    with zipfile.ZipFile(source) as old:
        extra = {name: old.read(name) for name in old.namelist() if name.startswith("edgelite")}
    staged = out.with_suffix(".tmp")
    with zipfile.ZipFile(out) as new, zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as joined:
        for name in new.namelist():
            joined.writestr(name, new.read(name))
        for name, data in extra.items():
            joined.writestr(name, data)
    os.replace(staged, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weight-bits", type=int, default=8, choices=(7, 8))
    args = parser.parse_args()
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file; give a folder")
    import keras


    model = keras.models.load_model(args.checkpoint, compile=False)
    labels = json.loads(zipfile.ZipFile(args.checkpoint).read("edgelite.json"))["labels"]
    size = model.input_shape[1]
    started = time.time()
    train_x, train_y = read_split(DATA / "train", labels, size)
    valid_x, valid_y = read_split(DATA / "validation", labels, size)
    before = float(np.mean(np.argmax(model.predict(valid_x.astype(np.float32), verbose=0), 1) == valid_y))
    quantized = build_quantized(model, args.weight_bits)
    quantized.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    flips = np.random.default_rng(0).random(len(train_x)) < 0.5  # the augmentation edgelite trains with, lightest part
    train_x = np.where(flips[:, None, None, None], train_x[:, :, ::-1], train_x).astype(np.float32)
    history = quantized.fit(train_x, train_y, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                            validation_data=(valid_x.astype(np.float32), valid_y), verbose=2)
    after = float(np.mean(np.argmax(model.predict(valid_x.astype(np.float32), verbose=0), 1) == valid_y))
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{args.checkpoint.stem}_qat{args.weight_bits}.keras"
    write_checkpoint(model, args.checkpoint, target)
    copy = args.out / args.checkpoint.name
    if copy.resolve() != args.checkpoint.resolve():
        shutil.copy2(args.checkpoint, copy)  # the same folder: one convert command each
    print(json.dumps({
        "checkpoint": str(args.checkpoint), "qat_checkpoint": str(target), "epochs": args.epochs,
        "weight_bits": args.weight_bits,
        "learning_rate": args.learning_rate, "float_accuracy_before": before, "float_accuracy_after": after,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "seconds": time.time() - started, "cpu": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
