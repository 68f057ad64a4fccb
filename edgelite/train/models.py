"""The built-in model families: the Xception transfer model, a small Xception trained from scratch, the course's CNN.

Builders import Keras lazily; all take raw 0-255 RGB and scale inside the
graph, so the saved model and every artifact made from it take raw pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from edgelite.errors import OptionError
from edgelite.lazy import import_keras
from edgelite.train.registry import FineTune, register_model


def _keras():
    return import_keras("train")[1]


def _head_activation(num_classes: int) -> tuple[int, str]:
    """One sigmoid unit for two classes, softmax otherwise (as the course does)."""
    return (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")


@dataclass(frozen=True)
class XceptionConfig:
    """Frozen ImageNet Xception base, pooling, optional inner dense layer, dropout, classifier."""

    size: int = 150
    lr: float = 0.001
    inner: int = 100
    dropout: float = 0.2
    weights: str = "imagenet"
    fine_tune: int = 0
    fine_tune_epochs: int = 3


def _adam(config: XceptionConfig):
    return _keras().optimizers.Adam(learning_rate=config.lr)


def _xception_fine_tune(config: XceptionConfig) -> Optional[FineTune]:
    if config.fine_tune <= 0:
        return None
    return FineTune(epochs=config.fine_tune_epochs, lr_factor=0.1,
                    unfreeze=lambda model: unfreeze_top(model, config.fine_tune),
                    description=f"fine-tuning the last {config.fine_tune} base layers")


@register_model("xception", XceptionConfig(), "Xception transfer model: frozen base, pooling, "
                "inner dense, dropout, classifier", optimizer=_adam, scaling="xception",
                smoke={"size": 71, "weights": "none", "inner": 8}, fine_tune=_xception_fine_tune)
def build_xception(config: XceptionConfig, num_classes: int):
    keras = _keras()
    if not 0.0 <= config.dropout < 1.0:
        raise OptionError(f"dropout must be in [0, 1), got {config.dropout}")
    base = _xception_base(keras, config)
    base.trainable = False
    inputs = keras.Input((config.size, config.size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="xception_scaling")(inputs)
    x = base(x, training=False)  # keeps BatchNorm in inference mode, also when fine-tuning
    x = keras.layers.GlobalAveragePooling2D(name="pooling")(x)
    if config.inner > 0:
        x = keras.layers.Dense(config.inner, activation="relu", name="inner")(x)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    units, activation = _head_activation(num_classes)
    outputs = keras.layers.Dense(units, activation=activation, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name="xception_transfer")


def _xception_base(keras, config: XceptionConfig):
    weights = None if config.weights == "none" else config.weights
    try:
        return keras.applications.Xception(weights=weights, include_top=False,
                                           input_shape=(config.size, config.size, 3))
    except ValueError as exc:
        raise OptionError(f"--weights {config.weights}: {exc}") from None
    except Exception as exc:  # download failures surface as URL/HTTP/OS errors of several kinds
        if config.weights != "imagenet":
            raise
        raise OptionError(
            f"could not download the ImageNet weights for Xception ({type(exc).__name__}: {exc}); "
            "offline, pass --weights FILE (a local Xception 'notop' weights .h5) or --weights none") from None


def unfreeze_top(model, layers: int) -> None:
    """Make the last `layers` layers of the Xception base trainable (BatchNorm stays frozen)."""
    keras = _keras()
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    base.trainable = True
    for layer in base.layers[:-layers]:
        layer.trainable = False
    for layer in base.layers[-layers:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


@dataclass(frozen=True)
class ScratchConfig:
    """The homework CNN: Conv2D(32, 3x3) -> MaxPool(2x2) -> Flatten -> Dense(64) -> classifier."""

    size: int = 150
    lr: float = 0.002
    momentum: float = 0.8
    optimizer: Literal["sgd", "adam"] = "sgd"


def _sgd(config: ScratchConfig):
    keras = _keras()
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.lr)
    if config.optimizer != "sgd":
        raise OptionError(f"unknown optimizer {config.optimizer!r}; expected sgd or adam")
    return keras.optimizers.SGD(learning_rate=config.lr, momentum=config.momentum)


@register_model("scratch", ScratchConfig(), "small CNN from scratch: Conv2D 32 3x3, MaxPool 2x2, "
                "Dense 64, sigmoid for two classes (softmax for more)", optimizer=_sgd, scaling="rescale",
                smoke={"size": 32})
def build_scratch(config: ScratchConfig, num_classes: int):
    keras = _keras()
    inputs = keras.Input((config.size, config.size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(32, (3, 3), activation="relu", name="conv")(x)
    x = keras.layers.MaxPooling2D((2, 2), name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense")(x)
    units, activation = _head_activation(num_classes)
    outputs = keras.layers.Dense(units, activation=activation, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name="scratch_cnn")


@dataclass(frozen=True)
class XceptionMiniConfig:
    """A small Xception trained from scratch: entry convolutions, separable blocks with strided 1x1 residuals.

    Attributes:
        size: input side in pixels.
        lr: Adam learning rate.
        entry: filters of the two entry convolutions (the second is twice this).
        widths: filters of each downsampling block, as "48,96,192,256" (one block per value).
        middle: identity-residual blocks at the last width (Xception's middle flow).
        exit: filters of the last separable convolution before pooling.
        dropout: dropout before the classifier.
    """

    size: int = 112
    lr: float = 0.002
    entry: int = 16
    widths: str = "48,96,192,256"
    middle: int = 1
    exit: int = 320
    dropout: float = 0.3


def _mini_adam(config: XceptionMiniConfig):
    return _keras().optimizers.Adam(learning_rate=config.lr)


def _mini_widths(config: XceptionMiniConfig) -> list[int]:
    try:
        widths = [int(part) for part in config.widths.split(",") if part.strip()]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise OptionError(f"widths must be positive integers like 48,96,192,256, got {config.widths!r}")
    return widths


@register_model("xception_mini", XceptionMiniConfig(), "small Xception-style CNN from scratch: entry "
                "convolutions, depthwise-separable blocks with batch norm and strided 1x1 residual adds, "
                "global pooling", optimizer=_mini_adam, scaling="xception",
                smoke={"size": 32, "entry": 8, "widths": "16,32", "middle": 1, "exit": 32})
def build_xception_mini(config: XceptionMiniConfig, num_classes: int):
    keras = _keras()
    layers = keras.layers
    if not 0.0 <= config.dropout < 1.0:
        raise OptionError(f"dropout must be in [0, 1), got {config.dropout}")
    widths = _mini_widths(config)

    def bn(name):
        return layers.BatchNormalization(name=f"{name}_bn")

    inputs = keras.Input((config.size, config.size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="xception_scaling")(inputs)
    x = layers.Conv2D(config.entry, 3, strides=2, padding="same", use_bias=False, name="entry1")(x)
    x = layers.Activation("relu", name="entry1_relu")(bn("entry1")(x))
    x = layers.Conv2D(2 * config.entry, 3, padding="same", use_bias=False, name="entry2")(x)
    x = layers.Activation("relu", name="entry2_relu")(bn("entry2")(x))
    for index, width in enumerate(widths, start=1):
        name = f"block{index}"
        residual = layers.Conv2D(width, 1, strides=2, padding="same", use_bias=False, name=f"{name}_shortcut")(x)
        residual = bn(f"{name}_shortcut")(residual)
        if index > 1:  # as in Xception: the first block follows the entry ReLU directly
            x = layers.Activation("relu", name=f"{name}_relu1")(x)
        x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"{name}_sep1")(x)
        x = layers.Activation("relu", name=f"{name}_relu2")(bn(f"{name}_sep1")(x))
        x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"{name}_sep2")(x)
        x = bn(f"{name}_sep2")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
        x = layers.Add(name=f"{name}_add")([x, residual])
    for index in range(1, config.middle + 1):
        name = f"middle{index}"
        residual = x
        for step in (1, 2):
            x = layers.Activation("relu", name=f"{name}_relu{step}")(x)
            x = layers.SeparableConv2D(widths[-1], 3, padding="same", use_bias=False, name=f"{name}_sep{step}")(x)
            x = bn(f"{name}_sep{step}")(x)
        x = layers.Add(name=f"{name}_add")([x, residual])
    x = layers.SeparableConv2D(config.exit, 3, padding="same", use_bias=False, name="exit_sep")(x)
    x = layers.Activation("relu", name="exit_relu")(bn("exit_sep")(x))
    x = layers.GlobalAveragePooling2D(name="pooling")(x)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    units, activation = _head_activation(num_classes)
    outputs = layers.Dense(units, activation=activation, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name="xception_mini")
