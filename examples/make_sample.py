"""Rebuild examples/clothing-mini from the full clothing-small dataset.

The sample is what the demo and the tests use, so that neither needs the full
dataset. It takes the first images of each class in file-name order (so the
sample is reproducible) and halves their size.

Usage:
    python examples/make_sample.py ../shared/datasets/clothing-small examples/clothing-mini
"""

import sys
from pathlib import Path

from PIL import Image

PER_SPLIT = {"train": 30, "validation": 10}
LONG_SIDE = 200


def main(source: Path, target: Path) -> None:
    for split, count in PER_SPLIT.items():
        for class_dir in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            out_dir = target / split / class_dir.name
            out_dir.mkdir(parents=True, exist_ok=True)
            for path in sorted(class_dir.glob("*.jpg"))[:count]:
                with Image.open(path) as image:
                    image = image.convert("RGB")
                    image.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
                    image.save(out_dir / path.name, quality=85)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
