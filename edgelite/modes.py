"""Every mode edgelite knows, as `Literal` types, and the one check of them.

The metadata, the option dataclasses, the exporters and the CLI all take their
choices from here (`choices(Precision)` gives the values for a `click.Choice`).
A value is checked once, where it enters the library: an option dataclass calls
`check_modes(self)` in `__post_init__`, which checks every field whose type
names one of these modes.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Literal, Optional, Union

from edgelite.errors import OptionError

Precision = Literal["float32", "float16", "dynamic", "int8"]
Format = Literal["tflite", "onnx"]
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]
Scaling = Literal["none", "rescale", "xception", "imagenet"]
Decode = Literal["fast", "exact"]
OutputKind = Literal["softmax", "sigmoid", "logits"]
ChannelOrder = Literal["RGB"]
IntegerIO = Literal["uint8", "int8"]
Compat = Literal["tflite-runtime-2.14"]
MixedPrecision = Literal["auto", "on", "off"]
TFLiteInterpreter = Literal["auto", "litert", "tflite-runtime", "tf.lite"]
ModelKind = Literal["artifact", "keras"]

# How a wrong value of each mode is named in its error message.
_NAMES: dict[Any, str] = {
    Precision: "precision",
    Format: "format",
    Interpolation: "interpolation",
    Scaling: "preprocessing",
    Decode: "decode",
    OutputKind: "output kind",
    ChannelOrder: "channel order",
    IntegerIO: "integer input/output type",
    Compat: "--compat",
    MixedPrecision: "--mixed-precision",
    TFLiteInterpreter: "TFLite interpreter",
    ModelKind: "model kind",
}

Progress = Callable[[str, int, int], None]
"""Receives (description, completed, total) while a long step runs."""


def no_progress(description: str, completed: int, total: int) -> None:
    """A `Progress` that shows nothing."""


def choices(mode: Any) -> tuple[str, ...]:
    """The values of a mode, in their documented order."""
    return typing.get_args(mode)


def check_mode(mode: Any, value: Any) -> Any:
    """Return `value` if it is one of `mode`'s values, else raise OptionError naming them all."""
    known = choices(mode)
    if value not in known:
        raise OptionError(f"unknown {_NAMES.get(mode, 'value')} {value!r}; expected one of {', '.join(known)}")
    return value


def check_mode_list(mode: Any, values: Any) -> Any:
    """Check a non-empty tuple of a mode's values."""
    known = choices(mode)
    what = _NAMES.get(mode, "value")
    if not values:
        raise OptionError(f"no {what} given; expected some of {', '.join(known)}")
    for value in values:
        if value not in known:
            raise OptionError(f"unknown {what} {value!r}; expected some of {', '.join(known)}")
    return tuple(values)


def check_modes(instance: Any) -> None:
    """Check every mode-typed field of a dataclass instance (plain, Optional or a tuple of one)."""
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        mode, many = _mode_of(hints[field.name])
        if mode is None or value is None:
            continue
        if many:
            check_mode_list(mode, value)
        else:
            check_mode(mode, value)


def _mode_of(hint: Any) -> tuple[Optional[Any], bool]:
    """(the mode a field type names, whether it is a tuple of it), or (None, False)."""
    if hint in _NAMES:
        return hint, False
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        return _mode_of(inner[0]) if len(inner) == 1 else (None, False)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in _NAMES:
        return args[0], True
    return None, False
