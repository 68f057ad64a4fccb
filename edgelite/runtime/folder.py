"""Image folders: flat, or one sub-folder per class."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from edgelite.errors import DatasetError, ImageError
from edgelite.modes import Decode, Interpolation
from edgelite.runtime.preprocess import list_images, preprocess


@dataclass(frozen=True)
class LabeledImage:
    """An image file and its class folder name (None in a flat folder)."""

    path: Path
    label: Optional[str]


def read_folder(folder: Path, limit: Optional[int] = None, seed: int = 0) -> list[LabeledImage]:
    """Images under `folder`, labelled by their first-level sub-folder.

    With `limit`, a seeded random sample of that size (the same every run).

    Raises:
        DatasetError: the folder is missing or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    paths = list_images(folder)
    if not paths:
        raise DatasetError(f"{folder}: no images found (looked for .jpg, .jpeg, .png, .bmp, .gif, .webp, .tif)")
    if limit is not None and len(paths) > limit:
        paths = sorted(random.Random(seed).sample(paths, limit))
    items = []
    for path in paths:
        parts = path.relative_to(folder).parts
        items.append(LabeledImage(path, parts[0] if len(parts) > 1 else None))
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
