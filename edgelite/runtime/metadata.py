"""What every edgelite artifact says about itself.

The same JSON document is stored inside each artifact: in ONNX `metadata_props`
under the key `edgelite`, and in a TFLite flatbuffer's metadata table under the
name `edgelite`. With it, `edgelite predict model.tflite photo.jpg` needs no flags.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Optional

from edgelite.errors import EdgeliteError, ModelFileError
from edgelite.modes import ChannelOrder, Decode, Interpolation, OutputKind, Precision, Scaling, check_modes

METADATA_KEY = "edgelite"
FORMAT_VERSION = 1
# The same document inside a .keras checkpoint written by edgelite's training (a zip entry Keras ignores).
CHECKPOINT_METADATA = "edgelite.json"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class ArtifactMetadata:
    """Self-description of an artifact.

    Attributes:
        labels: class names, in output order (for a one-unit sigmoid: negative, positive).
        input_height: model input height in pixels.
        input_width: model input width in pixels.
        channel_order: order of colour channels the model expects.
        input_scaling: scaling the runtime applies to raw 0-255 pixels; "none"
            when the graph scales by itself (every edgelite artifact).
        graph_scaling: the scaling built into the graph, for information.
        interpolation: resize filter used in training, reused on the device.
        decode: how JPEGs were decoded in training and the parity check ("fast":
            reduced DCT scale for large photos; "exact": every pixel), reused on
            the device. Artifacts written before this field existed read as "exact".
        output_kind: what the output scores are.
        precision: weights/activations precision of this artifact.
        source_sha256: sha256 of the checkpoint the artifact came from.
        edgelite_version: version of edgelite that wrote the artifact.
    """

    labels: tuple[str, ...]
    input_height: int
    input_width: int
    channel_order: ChannelOrder = "RGB"
    input_scaling: Scaling = "none"
    graph_scaling: Scaling = "none"
    interpolation: Interpolation = "bilinear"
    decode: Decode = "fast"
    output_kind: OutputKind = "softmax"
    precision: Precision = "float32"
    source_sha256: str = ""
    edgelite_version: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        check_modes(self)

    def to_json(self) -> str:
        """Serialise to a compact JSON string."""
        data = asdict(self)
        data["labels"] = list(self.labels)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ArtifactMetadata":
        """Parse the JSON written by `to_json`; unknown keys from newer versions are ignored."""
        try:
            data = json.loads(text)
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            values["labels"] = tuple(str(label) for label in values["labels"])
            values.setdefault("decode", "exact")  # what every artifact before the field was made with
            return cls(**values)
        except (ValueError, KeyError, TypeError, AttributeError, EdgeliteError) as exc:
            raise ModelFileError(f"the artifact's edgelite metadata is unreadable ({exc})") from None

    def with_precision(self, precision: Precision) -> "ArtifactMetadata":
        """A copy describing the same model at another precision."""
        return replace(self, precision=precision)


def read_checkpoint_metadata(path: Path) -> Optional[ArtifactMetadata]:
    """The metadata edgelite's training stored inside a .keras checkpoint, if any."""
    path = Path(path)
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        if CHECKPOINT_METADATA not in archive.namelist():
            return None
        return ArtifactMetadata.from_json(archive.read(CHECKPOINT_METADATA))


def checkpoint_entries(metadata: ArtifactMetadata) -> dict[str, str]:
    """The zip entries that carry `metadata` inside a .keras checkpoint."""
    return {CHECKPOINT_METADATA: metadata.to_json()}

