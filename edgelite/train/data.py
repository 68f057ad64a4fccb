"""Folder-per-class datasets, decoded once through the runtime's `preprocess`.

Layouts: DIR/train/<class>/* with DIR/validation/<class>/*, or DIR/<class>/*
split by `val_split`. Decoded images are kept in memory as uint8 for all epochs
(and all variants of an experiment).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgelite.errors import DatasetError, EdgeliteError
from edgelite.modes import Decode, Interpolation, Progress, no_progress
from edgelite.runtime.preprocess import IMAGE_SUFFIXES, preprocess


@dataclass
class Dataset:
    """Decoded training and validation images with integer labels."""

    classes: tuple[str, ...]
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counts = ", ".join(f"{c} {int((self.train_y == i).sum())}" for i, c in enumerate(self.classes))
        skipped = f"; skipped {len(self.skipped)} unreadable file(s)" if self.skipped else ""
        return (f"{len(self.train_y)} training and {len(self.val_y)} validation images in "
                f"{len(self.classes)} classes ({counts}){skipped}")


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        classes[sub.name] = [p for p in sorted(sub.rglob("*")) if p.is_file()]
    return classes


def _check_classes(split: str, classes: dict[str, list[Path]], folder: Path) -> None:
    if not classes:
        raise DatasetError(f"{folder}: no class folders; expected {folder}/<class>/<image files>")
    if len(classes) == 1:
        raise DatasetError(f"{folder}: only one class ({next(iter(classes))}); a classifier needs at least two")
    for name, files in classes.items():
        if not [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]:
            raise DatasetError(f"{folder}/{name}: class folder has no images ({split} split)")



def find_splits(data: Path, val_split: Optional[float], seed: int = 0) -> tuple[tuple[str, ...], list, list]:
    """(classes, [(path, label)] train, [(path, label)] validation) of a dataset folder.

    Raises:
        DatasetError: missing folders, an empty or single class, or class sets that differ.
    """
    data = Path(data)
    if not data.is_dir():
        raise DatasetError(f"{data}: no such folder")
    if (data / "train").is_dir():
        if val_split is not None:
            raise DatasetError(f"{data} has train/ and validation/ splits already; drop --val-split")
        if not (data / "validation").is_dir():
            raise DatasetError(f"{data} has train/ but no validation/ folder; add one or use --val-split "
                               "on a folder of class folders")
        train, val = _class_folders(data / "train"), _class_folders(data / "validation")
        _check_classes("train", train, data / "train")
        _check_classes("validation", val, data / "validation")
        if set(train) != set(val):
            only_train = sorted(set(train) - set(val))
            only_val = sorted(set(val) - set(train))
            raise DatasetError(f"class folders differ between train and validation: only in train "
                               f"{only_train or '-'}, only in validation {only_val or '-'}")
        classes = tuple(sorted(train))
        pairs = lambda split: [(p, i) for i, c in enumerate(classes) for p in split[c]]  # noqa: E731
        return classes, pairs(train), pairs(val)
    if val_split is None:
        raise DatasetError(f"{data}: expected train/ and validation/ folders, or class folders with --val-split 0.2")
    if not 0.0 < val_split < 1.0:
        raise DatasetError(f"--val-split must be between 0 and 1, got {val_split}")
    folders = _class_folders(data)
    _check_classes("all", folders, data)
    classes = tuple(sorted(folders))
    train, val = [], []
    rng = random.Random(seed)
    for i, name in enumerate(classes):
        files = list(folders[name])
        rng.shuffle(files)
        cut = max(1, int(round(len(files) * val_split)))
        val += [(p, i) for p in files[:cut]]
        train += [(p, i) for p in files[cut:]]
    return classes, train, val


def _decode(pairs: list, size: int, interpolation: Interpolation, decode: Decode, skipped: list[str], what: str,
            progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for done, (path, label) in enumerate(pairs, 1):
        try:
            images.append(preprocess(path, size, size, interpolation, decode).pixels.astype(np.uint8))
            labels.append(label)
        except EdgeliteError as exc:
            skipped.append(str(exc))
        progress(f"decoding {what} images", done, len(pairs))
    if not images:
        raise DatasetError(f"no readable {what} images")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_dataset(data: Path, size: int, interpolation: Interpolation = "bilinear",
                 val_split: Optional[float] = None, seed: int = 0, progress: Progress = no_progress,
                 decode: Decode = "fast") -> Dataset:
    """Decode a dataset folder at `size`x`size`; unreadable files are skipped and listed."""
    classes, train, val = find_splits(data, val_split, seed)
    skipped: list[str] = []
    train_x, train_y = _decode(train, size, interpolation, decode, skipped, "training", progress)
    val_x, val_y = _decode(val, size, interpolation, decode, skipped, "validation", progress)
    for i, name in enumerate(classes):
        if not (train_y == i).any():
            raise DatasetError(f"class {name} has no readable training images")
    return Dataset(classes, train_x, train_y, val_x, val_y, skipped)

