"""`predict_dataset` over a Ray Dataset of image bytes (`read_binary_files`), the library's second input kind.

    python -P ray_bytes_job.py ADDRESS MODEL IMAGE... OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ray.data

from edgelite.integrations.ray import RayOptions, connect, predict_dataset


def main(address: str, model: str, images: list[str], out: str) -> None:
    connect(address)
    files = ray.data.read_binary_files(images, include_paths=True)
    rows = predict_dataset(files, model, RayOptions(top_k=3)).take_all()  # a read stage, then the actors
    Path(out).write_text(json.dumps(rows))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:-1], sys.argv[-1])
