"""Check an artifact against the Keras model it came from, on real images."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edgelite.convert.options import STRICT_LIMITS
from edgelite.errors import ConversionError
from edgelite.modes import Precision
from edgelite.runtime import load
from edgelite.runtime.scores import accuracy, top1


@dataclass(frozen=True)
class Parity:
    """How closely an artifact follows its source model.

    Attributes:
        images: number of images compared.
        max_abs_diff: largest absolute difference of any output score.
        top1_agreement: fraction of images with the same top-1 class.
        accuracy: top-1 accuracy of the artifact where labels are known, else None.
        reference_accuracy: the same for the Keras model.
        passed: whether the --strict thresholds for its precision are met.
    """

    images: int
    max_abs_diff: float
    top1_agreement: float
    accuracy: Optional[float]
    reference_accuracy: Optional[float]
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def check_parity(artifact: Path, precision: Precision, pixels: np.ndarray, reference: np.ndarray,
                 truth: Optional[np.ndarray]) -> Parity:
    """Run `artifact` through edgelite.runtime on `pixels` and compare with `reference` outputs.

    Raises:
        ConversionError: the artifact's output shape differs from the reference.
    """
    model = load(artifact)
    outputs = np.concatenate([model.run(pixels[i:i + 32]) for i in range(0, len(pixels), 32)])
    if outputs.shape != reference.shape:
        raise ConversionError(
            f"{artifact.name}: output shape {outputs.shape} differs from the Keras model's {reference.shape}")
    predicted, expected = top1(outputs), top1(reference)
    max_diff = float(np.abs(outputs - reference).max())
    agreement = float((predicted == expected).mean())
    max_allowed, min_agreement = STRICT_LIMITS[precision]
    passed = (max_allowed is None or max_diff <= max_allowed) and (min_agreement is None or agreement >= min_agreement)
    return Parity(len(pixels), max_diff, agreement, accuracy(predicted, truth), accuracy(expected, truth), passed)


def class_indices(labels: Sequence[Optional[str]], classes: Sequence[str]) -> Optional[np.ndarray]:
    """Class index per image (-1 where unknown), or None when no image has a known class."""
    lookup = {name: i for i, name in enumerate(classes)}
    indices = np.array([lookup.get(label, -1) if label else -1 for label in labels])
    return indices if (indices >= 0).any() else None
