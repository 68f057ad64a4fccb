"""Shared fixtures: a small learnable image dataset, a model trained on it, its artifacts.

Everything is generated here; nothing depends on the network or on shared data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

COLORS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
SIZE = 32


def make_image(color: tuple[int, int, int], rng: np.random.Generator, size: int = 48) -> Image.Image:
    """A noisy image dominated by one colour, with a random darker square."""
    base = np.array(color, dtype=np.float32)[None, None, :] * rng.uniform(0.7, 1.1)
    pixels = base + rng.normal(0, 25, (size, size, 3))
    x, y = rng.integers(0, size // 2, 2)
    pixels[y:y + size // 3, x:x + size // 3] *= 0.5
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_dataset(root: Path, per_class: dict[str, int], seed: int = 0, classes=COLORS) -> Path:
    """Write root/<split>/<class>/*.jpg for each split in per_class."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for name, color in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                make_image(color, rng).save(folder / f"{name}_{i:03d}.jpg", quality=92)
    return root


@pytest.fixture(scope="session")
def color_data(tmp_path_factory) -> Path:
    """Three colour classes, 40 training and 15 validation images each."""
    return make_dataset(tmp_path_factory.mktemp("colors"), {"train": 40, "validation": 15})


@pytest.fixture(scope="session")
def trained_checkpoint(color_data, tmp_path_factory) -> Path:
    """The scratch CNN trained on the colour data through edgelite.train (labels inside)."""
    from edgelite.train import TrainOptions, train

    out = tmp_path_factory.mktemp("run")
    result = train("scratch", TrainOptions(data=color_data, out=out, epochs=4, batch_size=16, verbose=0),
                   {"size": SIZE, "optimizer": "adam", "lr": 0.003})
    assert result.best_checkpoint is not None
    return result.best_checkpoint


@pytest.fixture(scope="session")
def artifacts(trained_checkpoint, color_data, tmp_path_factory):
    """Every artifact of the trained checkpoint, with the convert report."""
    from edgelite.convert import ConvertOptions, convert

    out = tmp_path_factory.mktemp("artifacts")
    options = ConvertOptions(calibration=color_data / "train", check=color_data / "validation")
    return convert(trained_checkpoint, out, options)


@pytest.fixture()
def photo(tmp_path) -> Path:
    """One RGB JPEG."""
    path = tmp_path / "photo.jpg"
    make_image(COLORS["red"], np.random.default_rng(1)).save(path)
    return path


def artifact(report, fmt: str, precision: str) -> Path:
    """Path of one artifact in a convert report."""
    return next(a.path for a in report.artifacts if a.format == fmt and a.precision == precision)
