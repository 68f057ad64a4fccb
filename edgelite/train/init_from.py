"""`--init-from`: start a new run from the weights of a checkpoint edgelite's training wrote.

Training stores the run's model family in every checkpoint as an extra zip
entry, `edgelite_train.json` (beside the artifact metadata, `edgelite.json`,
which carries the labels and input size). A new run may start from such a
checkpoint when the family and the class set are the same; its own options
(epochs, augmentation, learning rate) apply from there, as in the course's
homework: train the small CNN, then train it on with augmentation.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgelite.errors import ModelFileError, OptionError
from edgelite.runtime.metadata import ArtifactMetadata, read_checkpoint_metadata

TRAIN_ENTRY = "edgelite_train.json"


def train_entry(family: str, started_from: Optional[dict]) -> dict[str, str]:
    """The zip entry that records a checkpoint's family (and the checkpoint its run started from)."""
    return {TRAIN_ENTRY: json.dumps({"family": family, "started_from": started_from}, sort_keys=True)}


@dataclass(frozen=True)
class InitSource:
    """A checkpoint to start from, checked against the family being trained.

    Attributes:
        path: the .keras file.
        sha256: its digest, recorded in history.json.
        metadata: its labels, input size and preprocessing.
        family: the model family that trained it.
    """

    path: Path
    sha256: str
    metadata: ArtifactMetadata
    family: str

    def record(self) -> dict:
        """What history.json says about where the run started."""
        return {"checkpoint": str(self.path), "sha256": self.sha256}


def read_init_source(path: Path, family: str) -> InitSource:
    """Read a checkpoint's metadata and family, refusing one of another family.

    Raises:
        ModelFileError: the file is missing or not a .keras checkpoint.
        OptionError: it was not written by edgelite's training, or by another family.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"--init-from {path}: no such file")
    try:
        metadata = read_checkpoint_metadata(path)
        with zipfile.ZipFile(path) as archive:
            recorded = json.loads(archive.read(TRAIN_ENTRY)) if TRAIN_ENTRY in archive.namelist() else None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelFileError(f"--init-from {path}: not a readable .keras checkpoint ({exc})") from None
    recorded_family = recorded.get("family") if isinstance(recorded, dict) else None
    if metadata is None or not isinstance(recorded_family, str):
        raise OptionError(f"--init-from {path}: not a checkpoint written by 'edgelite train' (it records no "
                          "model family and labels); start from a <family>_<epoch>_<accuracy>.keras of a run")
    if recorded_family != family:
        raise OptionError(f"--init-from {path} is a {recorded_family} checkpoint; it cannot start a "
                          f"{family} run (use 'edgelite train {recorded_family} --init-from ...')")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return InitSource(path, digest, metadata, family)


def check_compatible(source: InitSource, classes: tuple[str, ...], size: int) -> None:
    """Refuse a checkpoint whose classes or input size differ from the new run's.

    Raises:
        OptionError: naming both class sets, or both sizes.
    """
    if tuple(source.metadata.labels) != tuple(classes):
        raise OptionError(f"--init-from {source.path} was trained on classes {', '.join(source.metadata.labels)}; "
                          f"this dataset has {', '.join(classes)} (use the same class folders, or --classes)")
    if (source.metadata.input_height, source.metadata.input_width) != (size, size):
        raise OptionError(f"--init-from {source.path} takes {source.metadata.input_height}x"
                          f"{source.metadata.input_width} images; drop --size or pass --size "
                          f"{source.metadata.input_height}")


def copy_weights(keras, model, source: InitSource) -> None:
    """Set `model`'s weights to the checkpoint's (same family, classes and size: same shapes).

    Raises:
        OptionError: the architectures differ (e.g. another --inner than the checkpoint's).
    """
    trained = keras.saving.load_model(source.path, compile=False, safe_mode=True)
    weights = trained.get_weights()
    shapes = [tuple(w.shape) for w in weights]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if shapes != expected:
        raise OptionError(f"--init-from {source.path}: its layers differ from this run's model (weights of shapes "
                          f"{_shapes(shapes)} vs {_shapes(expected)}); pass the options it was trained with")
    model.set_weights(weights)


def _shapes(shapes: list[tuple]) -> str:
    shown = ", ".join("x".join(map(str, s)) for s in shapes[:6])
    return shown + (", ..." if len(shapes) > 6 else "")
