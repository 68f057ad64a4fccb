"""Image folders, read one way everywhere: flat, or one sub-folder per class.

Training, calibration, evaluation, bench and predict all list folders here, so
they agree on what a class folder and an image file are:

- a class folder is a sub-folder whose name does not start with "." (hidden
  folders, at any depth, are skipped: `.ipynb_checkpoints`, `.thumbnails`);
- an image is a file whose suffix is one of `IMAGE_SUFFIXES`;
- folders that are symlinks are followed, and each real folder is read once
  per walk, so a symlink loop ends instead of recursing forever;
- a folder that cannot be read is never skipped silently: it raises
  `DatasetError`, or goes to the caller's `on_unreadable`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterator, Optional, Sequence

import numpy as np

from edgelite.errors import DatasetError, ImageError
from edgelite.modes import Decode, Interpolation
from edgelite.runtime.preprocess import IMAGE_SUFFIXES, preprocess

# Receives a folder that cannot be read and the one-line message saying why.
OnUnreadable = Callable[[Path, str], None]


@dataclass(frozen=True)
class LabeledImage:
    """An image file and its class folder name (None in a flat folder)."""

    path: Path
    label: Optional[str]


def is_image_file(path: Path) -> bool:
    """True when `path`'s suffix is one of IMAGE_SUFFIXES (the content is not read)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def looked_for() -> str:
    """The suffixes images are found by, for messages: ".jpg, .jpeg, ..."."""
    return ", ".join(IMAGE_SUFFIXES)


def unreadable_message(folder: Path, exc: OSError) -> str:
    """The one line that names a folder that cannot be read and why."""
    return f"{folder}: cannot read the folder ({exc.strerror or type(exc).__name__})"


def _raise(folder: Path, message: str) -> None:
    raise DatasetError(message)


def _folder_key(path: Path) -> tuple[int, int]:
    stat = path.stat()  # follows a symlink: the key is the real folder's
    return stat.st_dev, stat.st_ino


def _children(folder: Path) -> tuple[list[Path], list[Path]]:
    """(sub-folders that are not hidden, files) directly in `folder`; symlinks count as what they point at.

    Raises:
        OSError: `folder` cannot be listed.
    """
    folders, files = [], []
    with os.scandir(folder) as listing:
        for entry in listing:
            try:
                if entry.is_dir():
                    if not entry.name.startswith("."):
                        folders.append(Path(entry.path))
                elif entry.is_file():
                    files.append(Path(entry.path))
            except OSError:  # a link to nowhere, or an entry that vanished: neither a file nor a folder
                continue
    return folders, files


def _children_or_error(folder: Path) -> tuple[list[Path], list[Path]]:
    try:
        return _children(folder)
    except OSError as exc:
        raise DatasetError(unreadable_message(folder, exc)) from None


def _walk(root: Path, on_unreadable: OnUnreadable, seen: set[tuple[int, int]]) -> Iterator[Path]:
    """Every file below `root` (unsorted), under the rules in the module docstring."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            key = _folder_key(folder)
            if key in seen:  # reached again through a symlink: a loop, or a second way in
                continue
            seen.add(key)
            folders, files = _children(folder)
        except OSError as exc:
            on_unreadable(folder, unreadable_message(folder, exc))
            continue
        stack.extend(folders)
        yield from files


def list_files(folder: Path, on_unreadable: OnUnreadable = _raise) -> list[Path]:
    """Every file below `folder`, whatever its suffix, sorted.

    Raises:
        DatasetError: a folder below cannot be read and `on_unreadable` is not given.
    """
    return sorted(_walk(Path(folder), on_unreadable, set()))


def list_images(folder: Path, on_unreadable: OnUnreadable = _raise) -> list[Path]:
    """Every image file below `folder` (by suffix), sorted.

    Args:
        folder: the folder to walk.
        on_unreadable: receives each folder that cannot be read (the walk goes
            on); without it such a folder raises.

    Raises:
        DatasetError: a folder below cannot be read and `on_unreadable` is not given.
    """
    return [path for path in list_files(folder, on_unreadable) if is_image_file(path)]


def class_folders(folder: Path) -> list[Path]:
    """`folder`'s class sub-folders (hidden ones skipped, symlinks followed), sorted by name: Keras's class order.

    Raises:
        DatasetError: `folder` cannot be read.
    """
    return sorted(_children_or_error(Path(folder))[0], key=lambda path: path.name)


def class_files(folder: Path, images_only: bool = True,
                only: Optional[Collection[str]] = None) -> dict[str, list[Path]]:
    """The files of each class folder of `folder` (or of those named in `only`), by class name, each sorted.

    Each class folder is walked on its own, with `folder` itself counted as
    read, so a symlink back up to the dataset cannot mix classes.

    Raises:
        DatasetError: a folder cannot be read.
    """
    folder = Path(folder)
    found = {}
    for sub in class_folders(folder):
        if only is not None and sub.name not in only:
            continue
        files = sorted(_walk(sub, _raise, {_folder_key(folder)}))
        found[sub.name] = [p for p in files if is_image_file(p)] if images_only else files
    return found


def read_folder(folder: Path, limit: Optional[int] = None, seed: int = 0) -> list[LabeledImage]:
    """Images under `folder`, labelled by their class folder (None for images directly in `folder`).

    With `limit`, a seeded random sample of that size (the same every run).

    Raises:
        DatasetError: the folder is missing, cannot be read, or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    items = [LabeledImage(path, None) for path in _children_or_error(folder)[1] if is_image_file(path)]
    items += [LabeledImage(path, name) for name, paths in class_files(folder).items() for path in paths]
    if not items:
        raise DatasetError(f"{folder}: no images found (looked for {looked_for()})")
    items.sort(key=lambda item: item.path)
    if limit is not None and len(items) > limit:
        items = sorted(random.Random(seed).sample(items, limit), key=lambda item: item.path)
    return items


def pixel_batches(paths: Sequence[Path], height: int, width: int, interpolation: Interpolation = "bilinear",
                  batch_size: int = 32, decode: Decode = "fast",
                  on_error: Optional[Callable[[Path, ImageError], None]] = None) -> Iterator[np.ndarray]:
    """Yield (N, height, width, 3) float32 batches of raw 0-255 pixels, through `preprocess`.

    Args:
        on_error: receives each image that cannot be read, which is then left
            out of its batch; without it, the first such image raises.

    Raises:
        ImageError: an image cannot be read and there is no `on_error`.
    """
    for start in range(0, len(paths), batch_size):
        pixels = []
        for path in paths[start:start + batch_size]:
            try:
                pixels.append(preprocess(path, height, width, interpolation, decode).pixels)
            except ImageError as exc:
                if on_error is None:
                    raise
                on_error(path, exc)
        if pixels:
            yield np.stack(pixels)
