"""Training-time augmentation, as the course's ImageDataGenerator did it, with Keras 3 layers.

Applied to training batches only; never part of the saved inference model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional

from edgelite.errors import OptionError


@dataclass(frozen=True)
class AugmentConfig:
    """Random transforms; zero (or False) turns one off.

    Attributes:
        rotation: maximum rotation in degrees.
        width_shift: maximum horizontal shift in pixels.
        height_shift: maximum vertical shift in pixels.
        shear: maximum shear angle in degrees.
        zoom: maximum zoom in or out, as a fraction (0.1 is 90%..110%).
        horizontal_flip: flip left-right at random.
    """

    rotation: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    horizontal_flip: bool = False

    @property
    def enabled(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


# The values the course used with ImageDataGenerator.
PRESETS = {
    "none": AugmentConfig(),
    "course": AugmentConfig(rotation=30, width_shift=10, height_shift=10, shear=10, zoom=0.1,
                            horizontal_flip=True),
}
_ALIASES = {"flip": "horizontal_flip", "shift": ("width_shift", "height_shift")}


def parse_augment(text: Optional[str]) -> AugmentConfig:
    """Parse '--augment': a preset ('course', 'none') or 'rotation=30,shift=10,zoom=0.1,flip'."""
    if not text:
        return PRESETS["none"]
    if text in PRESETS:
        return PRESETS[text]
    known = {f.name for f in fields(AugmentConfig)}
    values: dict = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        key, _, raw = item.partition("=")
        names = _ALIASES.get(key, key)
        for name in names if isinstance(names, tuple) else (names,):
            if name not in known:
                raise OptionError(f"unknown augmentation {key!r}; expected a preset ({', '.join(PRESETS)}) "
                                  f"or some of {', '.join(sorted(known | set(_ALIASES)))}")
            if name == "horizontal_flip":
                values[name] = raw.lower() not in ("0", "false", "no") if raw else True
            else:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise OptionError(f"augmentation {key} needs a number, got {raw!r}") from None
    return AugmentConfig(**values)


def augmentation_layers(config: AugmentConfig, size: int, seed: int = 0):
    """A Keras Sequential of random layers for `config`, or None when nothing is on."""
    if not config.enabled:
        return None
    from edgelite.lazy import import_keras

    keras = import_keras("train")[1]
    layers = []
    if config.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.rotation:
        layers.append(keras.layers.RandomRotation(config.rotation / 360.0, fill_mode="nearest", seed=seed))
    if config.width_shift or config.height_shift:
        layers.append(keras.layers.RandomTranslation(config.height_shift / size, config.width_shift / size,
                                                     fill_mode="nearest", seed=seed))
    if config.shear:
        factor = min(1.0, math.tan(math.radians(config.shear)))
        layers.append(keras.layers.RandomShear(x_factor=factor, y_factor=factor, fill_mode="nearest", seed=seed))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="nearest", seed=seed))
    return keras.Sequential(layers, name="augmentation")
