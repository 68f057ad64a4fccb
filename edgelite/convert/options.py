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
        min_agreement: int8 target, a fraction (0.995 for 99.5%): keep the
            fewest layers in float until the int8 artifact gives the source
            model's top-1 class on this share of the selection images
            (edgelite/convert/agreement.py).
        max_drop: int8 target, a fraction (0.003 for 0.3 points): the largest
            top-1 accuracy loss against the source model on the selection images.
        selection: folder of images to choose the float layers on; without it,
            every other image of each class in the check folder is used for the
            choice and the rest for the reported parity.
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
    min_agreement: Optional[float] = None
    max_drop: Optional[float] = None
    selection: Optional[Path] = None

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
        self._check_target()

    @property
    def has_target(self) -> bool:
        """Whether an int8 agreement target (--min-agreement or --max-drop) is set."""
        return self.min_agreement is not None or self.max_drop is not None

    def _check_target(self) -> None:
        """The agreement target needs int8 and images that calibrated nothing."""
        if self.min_agreement is not None and not 0 < self.min_agreement <= 1:
            raise OptionError(f"--min-agreement must be a percentage above 0 and at most 100, got "
                              f"{self.min_agreement * 100:g}")
        if self.max_drop is not None and not 0 <= self.max_drop <= 1:
            raise OptionError(f"--max-drop must be from 0 to 100 points, got {self.max_drop * 100:g}")
        if not self.has_target:
            if self.selection is not None:
                raise OptionError("--selection is used only with --min-agreement or --max-drop")
            return
        if "int8" not in self.precisions:
            raise OptionError("--min-agreement and --max-drop apply to int8 artifacts: add int8 to --precision")
        folders = [("--calibration", self.calibration), ("--check", self.check), ("--selection", self.selection)]
        if self.check is None:
            raise OptionError("--min-agreement and --max-drop choose layers on images that calibrated nothing: "
                              "pass --check DIR, a folder other than --calibration")
        given = [(name, Path(folder).resolve()) for name, folder in folders if folder is not None]
        for i, (name, folder) in enumerate(given):
            for other, other_folder in given[i + 1:]:
                if folder == other_folder or folder in other_folder.parents or other_folder in folder.parents:
                    raise OptionError(f"{name} {folder} and {other} {other_folder} share images; with an agreement "
                                      "target, calibration, selection and check images must be apart")

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

