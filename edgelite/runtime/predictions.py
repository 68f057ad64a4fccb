"""Ranked results and the prediction pipeline shared by `Model.predict_iter` and evaluate's Keras checkpoints."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from edgelite.errors import ImageError, OptionError
from edgelite.runtime.preprocess import ImageSource, PreparedImage
from edgelite.runtime.read_ahead import chunks, read_ahead
from edgelite.runtime.stdin import InputError

# predict_iter decodes up to this many batches ahead of the one the model runs.
READ_AHEAD_BATCHES = 2


@dataclass(frozen=True)
class Prediction:
    """One ranked class."""

    label: str
    score: float
    index: int


class Predictions(list):
    """The ranked `Prediction`s of one image (a list), with what happened to it.

    Attributes:
        source: the image as given (a path), or what it was ("image bytes", "array").
        notes: conversions made to read the image (e.g. "CMYK image converted to RGB").
        error: why the image could not be classified (then the list is empty), else None.
    """

    def __init__(self, ranked: Iterable[Prediction] = (), notes: Sequence[str] = (), source: str = "",
                 error: Optional[str] = None):
        super().__init__(ranked)
        self.notes: tuple[str, ...] = tuple(notes)
        self.source = source
        self.error = error

    @property
    def ok(self) -> bool:
        """True when the image was classified."""
        return self.error is None

    def to_dict(self, digits: int = 6) -> dict:
        """`{"image", "predictions": [{"label", "score"}...], "notes"}`, or `{"image", "error"}`."""
        if self.error is not None:
            return {"image": self.source, "error": self.error}
        return {"image": self.source, "predictions": [{"label": p.label, "score": round(p.score, digits)}
                                                      for p in self], "notes": list(self.notes)}


def _source_name(source: ImageSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "image bytes"
    if isinstance(source, InputError):
        return source.name
    return "array" if isinstance(source, np.ndarray) else type(source).__name__


def rank(scores: np.ndarray, labels: Sequence[str], top_k: int,
         order: Optional[np.ndarray] = None) -> list[list[Prediction]]:
    """Top-k predictions of each row of class scores, best first (ties keep class order).

    `order`, when given, is each row's classes already sorted that way
    (`np.argsort(-scores, axis=1, kind="stable")`, e.g. made on another thread).
    """
    if top_k < 1:
        raise OptionError(f"top-k must be at least 1, got {top_k}")
    scores = np.asarray(scores)
    if order is None:
        order = np.argsort(-scores, axis=1, kind="stable")
    ranked = []
    for row, classes in zip(scores.tolist(), order[:, :top_k].tolist()):
        ranked.append([Prediction(labels[i], row[i], i) for i in classes])
    return ranked


def predict_stream(sources: Iterable[ImageSource], prepare: Callable[[ImageSource], PreparedImage],
                   scores: Callable[[np.ndarray], np.ndarray], labels: Sequence[str], top_k: int = 5,
                   batch_size: int = 8, workers: Optional[int] = None) -> Iterator[Predictions]:
    """The pipeline of `Model.predict_iter`, for any `prepare` (one image) and `scores` (a batch).

    `workers` threads run `prepare` ahead (at most READ_AHEAD_BATCHES batches)
    while `scores` runs a batch; results come in input order, and an image
    `prepare` cannot read (ImageError) or an `InputError` in `sources` is a
    `Predictions` with its `error`. When iterating `sources` raises, every
    item it gave before is answered first, then the exception is raised.
    """
    if top_k < 1:
        raise OptionError(f"top-k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise OptionError(f"batch size must be at least 1, got {batch_size}")
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if workers < 1:
        raise OptionError(f"workers must be at least 1, got {workers}")

    def prepare_or_error(source: ImageSource) -> Union[PreparedImage, ImageError]:
        if isinstance(source, InputError):  # a stdin line that is not a path: its own error result
            return ImageError(str(source))
        try:
            return prepare(source)
        except ImageError as exc:
            return exc

    decoded = read_ahead(prepare_or_error, sources, workers, depth=READ_AHEAD_BATCHES * batch_size)
    for chunk in chunks(decoded, batch_size):
        good = [prepared for _, prepared in chunk if isinstance(prepared, PreparedImage)]
        ranked = iter(rank(scores(np.stack([p.pixels for p in good])), labels, top_k) if good else [])
        for source, prepared in chunk:
            if isinstance(prepared, PreparedImage):
                yield Predictions(next(ranked), prepared.notes, _source_name(source))
            else:
                yield Predictions(source=_source_name(source), error=str(prepared))
