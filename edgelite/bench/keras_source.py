"""The Keras reference model of a benchmark, loaded the way `edgelite convert` loads it.

Imports TensorFlow: only the Keras worker and the benchmark suite use this module.
"""

from __future__ import annotations

from pathlib import Path

from edgelite.convert.source import SourceModel, load_checkpoint
from edgelite.errors import MissingLabelsError
from edgelite.lazy import import_keras


def load_reference(path: Path) -> SourceModel:
    """Load a checkpoint taking raw 0-255 pixels, naming classes class_i if it records no labels.

    Labels only name the classes in the bench results; accuracy needs the real
    ones, which edgelite's training stores in the checkpoint.
    """
    try:
        return load_checkpoint(path)
    except MissingLabelsError:
        pass
    _, keras = import_keras("convert")
    outputs = int(keras.saving.load_model(path, compile=False, safe_mode=True).output_shape[-1])
    classes = 2 if outputs == 1 else outputs
    source = load_checkpoint(path, labels=tuple(f"class_{i}" for i in range(classes)))
    source.notes.append("no labels in the checkpoint; named them class_0, class_1, ...")
    return source
