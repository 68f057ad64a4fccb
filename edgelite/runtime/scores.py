"""Top-1 classes and accuracy of model scores, shared by parity checks and benchmarks."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def top1(scores: np.ndarray) -> np.ndarray:
    """Top-1 class per row; a one-unit sigmoid output is thresholded at 0.5."""
    return (scores[:, 0] >= 0.5).astype(int) if scores.shape[1] == 1 else scores.argmax(axis=1)


def accuracy(predicted: Sequence[int] | np.ndarray, truth: Optional[Sequence[int] | np.ndarray]) -> Optional[float]:
    """Top-1 accuracy over the images whose class is known (truth >= 0); None when none is."""
    if truth is None:
        return None
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    known = truth >= 0
    if not known.any():
        return None
    return float((predicted[known] == truth[known]).mean())
