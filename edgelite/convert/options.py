"""Typed options of `edgelite convert`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from edgelite.convert.formats import OUTPUT_FORMATS
from edgelite.errors import OptionError
from edgelite.modes import (Compat, Decode, Format, IntegerIO, Interpolation, Precision, Scaling, check_modes,
                            choices)

# Calibration images for int8: a callable that returns (N, H, W, 3) float32 batches of raw pixels.
Calibration = Callable[[], Iterable[np.ndarray]]

FORMATS: tuple[Format, ...] = choices(Format)
PRECISIONS: tuple[Precision, ...] = choices(Precision)
# --strict thresholds: (max |diff| allowed, minimum top-1 agreement).
STRICT_LIMITS: dict[Precision, tuple[Optional[float], Optional[float]]] = {
    "float32": (1e-4, None),
    "float16": (None, 0.99),
    "dynamic": (None, 0.97),
    "int8": (None, 0.97),
}
MIN_CALIBRATION_IMAGES = 300
# --compat targets: the TFLite runtime version every artifact must load in.
COMPAT_RUNTIMES: dict[Compat, str] = {"tflite-runtime-2.14": "2.14.0"}
# The newest tflite-runtime release: artifacts needing more get a note.
LAST_TFLITE_RUNTIME = "2.14.0"


@dataclass(frozen=True)
class ConvertOptions:
    """What `convert` writes and how it checks it.

    Attributes:
        formats: output formats.
        precisions: precisions to write in each format that supports them.
        calibration: folder of real images for int8 calibration (needed for int8).
        check: folder of real images for the parity check (default: calibration).
        labels: class names, when the checkpoint does not carry them.
        preprocess: scaling the checkpoint expects outside its graph
            ("none", "rescale": x/255, "xception": x/127.5-1); put inside the artifact.
        interpolation: resize filter to record, when the checkpoint does not carry one.
        decode: JPEG decoding to record and check with ("fast" or "exact"), when
            the checkpoint does not carry one (default "fast").
        integer_io: input/output type of full-integer TFLite models.
        compat: an older runtime every TFLite artifact must load in
            ("tflite-runtime-2.14": dynamic-range Dense layers get per-tensor
            weight scales, FULLY_CONNECTED v9 instead of v12).
        strict: fail when parity misses the thresholds in STRICT_LIMITS.
        force: replace artifacts and a manifest.json already in the output
            folder (without it, convert refuses before doing any work).
        max_calibration_images: cap on calibration images used.
        max_check_images: cap on parity images used.
        equalize: before int8, equalize the channels of each SeparableConv2D's
            depthwise output (function-preserving; edgelite/convert/equalize.py).
        mean: with preprocess "imagenet", the per-channel (R, G, B) mean in 0-1
            units to use instead of ImageNet's.
        std: the same for the standard deviation.
    """

    formats: tuple[Format, ...] = FORMATS
    precisions: tuple[Precision, ...] = PRECISIONS
    calibration: Optional[Path] = None
    check: Optional[Path] = None
    labels: Optional[tuple[str, ...]] = None
    preprocess: Optional[Scaling] = None
    interpolation: Optional[Interpolation] = None
    decode: Optional[Decode] = None
    integer_io: IntegerIO = "uint8"
    compat: Optional[Compat] = None
    strict: bool = False
    force: bool = False
    max_calibration_images: int = 500
    max_check_images: int = 200
    equalize: bool = True
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None

    def __post_init__(self) -> None:
        check_modes(self)
        self._check_normalization()
        if self.max_calibration_images < 1 or self.max_check_images < 1:
            raise OptionError("image limits must be at least 1")
        for precision in self.precisions:
            if not any(precision in OUTPUT_FORMATS[f].precisions for f in self.formats):
                raise OptionError(
                    f"precision {precision} is not available in {', '.join(self.formats)}; "
                    + "; ".join(f"{f} has {', '.join(OUTPUT_FORMATS[f].precisions)}" for f in self.formats))
        if "int8" in self.precisions and self.calibration is None:
            raise OptionError("int8 needs real calibration images: pass --calibration DIR "
                              "(or leave int8 out with --precision)")

    def _check_normalization(self) -> None:
        if (self.mean is not None or self.std is not None) and self.preprocess != "imagenet":
            raise OptionError("--mean and --std go with --preprocess imagenet")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != 3:
                raise OptionError(f"--{name} takes 3 values (R,G,B), got {len(values)}")
        if self.std is not None and min(self.std) <= 0:
            raise OptionError(f"--std values must be above 0, got {','.join(map(str, self.std))}")

    def targets(self) -> list[tuple[Format, Precision]]:
        """Every (format, precision) pair to write, in a stable order."""
        return [(f, p) for f in self.formats for p in self.precisions if p in OUTPUT_FORMATS[f].precisions]

