"""What every edgelite artifact says about itself.

The same JSON document is stored inside each artifact: in ONNX `metadata_props`
under the key `edgelite`, and in a TFLite flatbuffer's metadata table under the
name `edgelite`. With it, `edgelite predict model.tflite photo.jpg` needs no flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Literal

from edgelite.errors import ModelFileError

METADATA_KEY = "edgelite"
FORMAT_VERSION = 1

OutputKind = Literal["softmax", "sigmoid", "logits"]
Precision = Literal["float32", "float16", "dynamic", "int8"]


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
        output_kind: what the output scores are.
        precision: weights/activations precision of this artifact.
        source_sha256: sha256 of the checkpoint the artifact came from.
        edgelite_version: version of edgelite that wrote the artifact.
    """

    labels: tuple[str, ...]
    input_height: int
    input_width: int
    channel_order: str = "RGB"
    input_scaling: str = "none"
    graph_scaling: str = "none"
    interpolation: str = "bilinear"
    output_kind: OutputKind = "softmax"
    precision: Precision = "float32"
    source_sha256: str = ""
    edgelite_version: str = ""
    format_version: int = FORMAT_VERSION

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
            return cls(**values)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelFileError(f"the artifact's edgelite metadata is unreadable ({exc})") from None

    def with_precision(self, precision: Precision) -> "ArtifactMetadata":
        """A copy describing the same model at another precision."""
        values = asdict(self)
        values["labels"] = self.labels
        values["precision"] = precision
        return ArtifactMetadata(**values)

