"""Classes from model outputs: how many, their scores, the top-1 and accuracy (runtime, convert, bench)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from edgelite.modes import OutputKind


def class_count(units: int) -> int:
    """How many classes a model with `units` outputs tells apart: one sigmoid unit means two."""
    return 2 if units == 1 else units


def class_scores(raw: np.ndarray, kind: OutputKind) -> np.ndarray:
    """Raw outputs (N, units) as per-class probabilities (N, classes).

    One sigmoid unit becomes (negative, positive); logits go through a sigmoid
    or a softmax; softmax and sigmoid outputs are returned as they are.
    """
    if raw.shape[1] == 1:
        positive = raw[:, 0] if kind != "logits" else 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.stack([1.0 - positive, positive], axis=1)
    if kind == "logits":
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return raw


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
