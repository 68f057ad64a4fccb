"""What checking manifest.json costs `load`: an ~80 MB float32 .tflite loaded with and without its manifest.

    python benchmarks/manifest_cost.py [--runs 5]

Builds the artifact with TensorFlow (a dense layer of 20 M weights on a 32x32
input), writes the manifest convert would write beside it, and prints the
median load time with the check, without it (the same file in a folder with
no manifest), and the sha256 alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(folder: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from edgelite.convert.tflite import embed_metadata
    from edgelite.runtime.metadata import ArtifactMetadata

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    hidden = keras.layers.Dense(6500, activation="relu")(keras.layers.Flatten()(scaled))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    flatbuffer = bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    path = folder / "big_float32.tflite"
    path.write_bytes(embed_metadata(flatbuffer, ArtifactMetadata(("a", "b", "c"), 32, 32, graph_scaling="rescale")))
    return path


def timed(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from edgelite.runtime import load

    with tempfile.TemporaryDirectory(prefix="edgelite-manifest-") as work:
        listed = build(Path(work))
        content = listed.read_bytes()
        entry = {"file": listed.name, "size_bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        (listed.parent / "manifest.json").write_text(json.dumps({"artifacts": [entry]}))
        alone = Path(work, "alone")
        alone.mkdir()
        (alone / listed.name).write_bytes(content)
        assert load(listed).manifest is not None and load(alone / listed.name).manifest is None
        with_check = timed(lambda: load(listed, threads=1), args.runs)
        without = timed(lambda: load(alone / listed.name, threads=1), args.runs)
        digest = timed(lambda: hashlib.sha256(content).hexdigest(), args.runs)
    print(f"{listed.name}: {len(content) / 1e6:.1f} MB, median of {args.runs} loads: "
          f"{with_check * 1000:.0f} ms with the manifest check, {without * 1000:.0f} ms without "
          f"(+{(with_check - without) * 1000:.0f} ms); sha256 alone {digest * 1000:.0f} ms "
          f"({len(content) / digest / 1e6:.0f} MB/s)")


if __name__ == "__main__":
    main()
