"""Folder-per-class datasets: the list of readable image files, for streaming.

Layouts: DIR/train/<class>/* with DIR/validation/<class>/*, or DIR/<class>/*
split by `val_split`. Only each file's header is read here (no pixels are
decoded), which finds non-images and decompression bombs up front; pixels are
decoded while the model trains (`edgelite.train.stream`), so memory does not
grow with the dataset.
"""

from __future__ import annotations

import random
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Optional, Sequence

from PIL import Image

from edgelite.errors import DatasetError
from edgelite.modes import Progress, no_progress
from edgelite.runtime.folder import class_files, class_folders, is_image_file
from edgelite.runtime.preprocess import MAX_PIXELS

# Threads reading headers: the work is waiting on the disk, not computing.
HEADER_THREADS = 8

Example = tuple[Path, int]


@dataclass(frozen=True)
class Dataset:
    """The readable image files of a dataset, with integer labels (indices into `classes`)."""

    classes: tuple[str, ...]
    train: list[Example]
    val: list[Example]
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        per_class = Counter(label for _, label in self.train)
        counts = ", ".join(f"{c} {per_class[i]}" for i, c in enumerate(self.classes))
        skipped = f"; skipped {len(self.skipped)} unreadable file(s)" if self.skipped else ""
        return (f"{len(self.train)} training and {len(self.val)} validation images in "
                f"{len(self.classes)} classes ({counts}){skipped}")

    def without(self, train_failed: Mapping[int, str], val_failed: Mapping[int, str]) -> "Dataset":
        """The dataset less the files (by index) that failed to decode during training, with their messages."""
        return replace(self, train=[e for i, e in enumerate(self.train) if i not in train_failed],
                       val=[e for i, e in enumerate(self.val) if i not in val_failed],
                       skipped=self.skipped + list(train_failed.values()) + list(val_failed.values()))


def _class_folders(folder: Path, only: Optional[Sequence[str]] = None) -> dict[str, list[Path]]:
    if only is not None:
        names = {p.name for p in class_folders(folder)}
        missing = [name for name in only if name not in names]
        if missing:
            raise DatasetError(f"{folder}: no class folder {', '.join(missing)}; it has {', '.join(sorted(names))}")
    # Every file, not only image suffixes: a non-image in a class folder is listed as skipped, not ignored.
    return class_files(folder, images_only=False, only=only)


def _check_classes(split: str, classes: dict[str, list[Path]], folder: Path) -> None:
    if not classes:
        raise DatasetError(f"{folder}: no class folders; expected {folder}/<class>/<image files>")
    if len(classes) == 1:
        raise DatasetError(f"{folder}: only one class ({next(iter(classes))}); a classifier needs at least two")
    for name, files in classes.items():
        if not any(is_image_file(p) for p in files):
            raise DatasetError(f"{folder}/{name}: class folder has no images ({split} split)")


def find_splits(data: Path, val_split: Optional[float], seed: int = 0,
                classes: Optional[Sequence[str]] = None) -> tuple[tuple[str, ...], list, list]:
    """(classes, [(path, label)] train, [(path, label)] validation) of a dataset folder.

    With `classes`, only those class folders are used (the others are left out, not errors).

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
        train, val = _class_folders(data / "train", classes), _class_folders(data / "validation", classes)
        _check_classes("train", train, data / "train")
        _check_classes("validation", val, data / "validation")
        if set(train) != set(val):
            only_train = sorted(set(train) - set(val))
            only_val = sorted(set(val) - set(train))
            raise DatasetError(f"class folders differ between train and validation: only in train "
                               f"{only_train or '-'}, only in validation {only_val or '-'}")
        names = tuple(sorted(train))
        pairs = lambda split: [(p, i) for i, c in enumerate(names) for p in split[c]]  # noqa: E731
        return names, pairs(train), pairs(val)
    if val_split is None:
        raise DatasetError(f"{data}: expected train/ and validation/ folders, or class folders with --val-split 0.2")
    if not 0.0 < val_split < 1.0:
        raise DatasetError(f"--val-split must be between 0 and 1, got {val_split}")
    folders = _class_folders(data, classes)
    _check_classes("all", folders, data)
    names = tuple(sorted(folders))
    train, val = [], []
    rng = random.Random(seed)
    for i, name in enumerate(names):
        files = list(folders[name])
        rng.shuffle(files)
        cut = max(1, int(round(len(files) * val_split)))
        val += [(p, i) for p in files[:cut]]
        train += [(p, i) for p in files[cut:]]
    return names, train, val


def header_problem(path: Path) -> Optional[str]:
    """Why `path` cannot be trained on, judged from its header alone (no pixels decoded), or None.

    The messages are the ones `preprocess` gives for the same files; a file whose
    header is fine but whose data is truncated is found later, while training.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.UnidentifiedImageError:
        return f"{path}: not an image Pillow can read"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return _bomb(path)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return f"{path}: truncated or corrupt image ({exc})"
    return _bomb(path) if width * height > MAX_PIXELS else None


def _bomb(path: Path) -> str:
    return f"{path}: over the {MAX_PIXELS:,} pixel limit (possible decompression bomb); resize it first"


def _readable(pairs: list[Example], skipped: list[str], what: str, progress: Progress) -> list[Example]:
    with ThreadPoolExecutor(HEADER_THREADS) as pool:
        problems = []
        for done, problem in enumerate(pool.map(header_problem, [path for path, _ in pairs]), 1):
            problems.append(problem)
            progress(f"checking {what} images", done, len(pairs))
    skipped += [problem for problem in problems if problem]
    readable = [pair for pair, problem in zip(pairs, problems) if not problem]
    if not readable:
        raise DatasetError(f"no readable {what} images")
    return readable


def scan_dataset(data: Path, val_split: Optional[float] = None, seed: int = 0,
                 classes: Optional[Sequence[str]] = None, progress: Progress = no_progress) -> Dataset:
    """The readable files of a dataset folder; non-images and bombs are skipped and listed.

    Raises:
        DatasetError: a bad layout (see `find_splits`), or a class without a readable training image.
    """
    names, train, val = find_splits(data, val_split, seed, classes)
    skipped: list[str] = []
    train = _readable(train, skipped, "training", progress)
    val = _readable(val, skipped, "validation", progress)
    for i, name in enumerate(names):
        if not any(label == i for _, label in train):
            raise DatasetError(f"class {name} has no readable training images")
    return Dataset(names, train, val, skipped)
