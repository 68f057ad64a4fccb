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

from edgelite.errors import EdgeliteError, ModelFileError, OptionError
from edgelite.modes import ChannelOrder, Decode, Interpolation, OutputKind, Precision, Scaling, check_modes

METADATA_KEY = "edgelite"
FORMAT_VERSION = 1
# Bounds a self-description must stay within: larger values are a corrupt or hostile file, not a model.
# (A model with a dynamic input takes its size from the metadata: 4096 x 4096 RGB is 200 MB of float32.)
MAX_INPUT_SIDE = 4096
MAX_LABELS = 100_000
MAX_LABEL_LENGTH = 1000
# The same document inside a .keras checkpoint written by edgelite's training (a zip entry Keras ignores).
CHECKPOINT_METADATA = "edgelite.json"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
# A JSON member of a .keras zip (edgelite.json, Keras's config.json) past this is not metadata but a bomb.
MAX_METADATA_MEMBER_BYTES = 16 << 20


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
        float_layers: int8 only: the layers `convert --min-agreement` kept in
            float (empty for a plain int8 artifact, and for files written before
            the field existed).
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
    float_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("labels", "float_layers"):  # JSON and callers give lists; the fields are tuples
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check_modes(self)
        _check_fields(self)

    def to_json(self) -> str:
        """Serialise to a compact JSON string."""
        data = asdict(self)
        data["labels"] = list(self.labels)
        if self.float_layers:
            data["float_layers"] = list(self.float_layers)
        else:  # a plain artifact's document stays byte for byte what it was before the field
            del data["float_layers"]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ArtifactMetadata":
        """Parse the JSON written by `to_json`, checking the type and range of every field.

        Keys this version does not know (added by a newer edgelite of the same
        format version) are ignored; a newer `format_version` is refused.

        Raises:
            ModelFileError: the document is not valid metadata.
        """
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise OptionError(f"expected a JSON object, got {type(data).__name__}")
            missing = [name for name in ("labels", "input_height", "input_width") if name not in data]
            if missing:
                raise OptionError(f"it has no {missing[0]}")
            version = data.get("format_version", FORMAT_VERSION)
            if _is_int(version) and version > FORMAT_VERSION:
                raise ModelFileError(f"the artifact's edgelite metadata has format_version {version}, newer than "
                                     f"this edgelite reads ({FORMAT_VERSION}); upgrade: pip install -U edgelite")
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            values.setdefault("decode", "exact")  # what every artifact before the field was made with
            return cls(**values)
        except ModelFileError:
            raise
        except (ValueError, TypeError, RecursionError, EdgeliteError) as exc:
            raise ModelFileError(f"the artifact's edgelite metadata is invalid: {exc}; "
                                 "convert the checkpoint again or get an intact copy of the file") from None

    def with_precision(self, precision: Precision) -> "ArtifactMetadata":
        """A copy describing the same model at another precision."""
        return replace(self, precision=precision)


def _check_fields(meta: ArtifactMetadata) -> None:
    """Types and ranges of the fields `check_modes` does not cover (it checks the modes, and lets None pass)."""
    empty = next((f.name for f in fields(meta) if getattr(meta, f.name) is None), None)
    if empty is not None:
        raise OptionError(f"{empty} is null")
    labels = meta.labels
    if not isinstance(labels, tuple) or not all(isinstance(label, str) for label in labels):
        raise OptionError(f"labels must be a list of strings, got {_shown(labels)}")
    if not 2 <= len(labels) <= MAX_LABELS:
        raise OptionError(f"expected 2 to {MAX_LABELS:,} labels, got {len(labels)}")
    layers = meta.float_layers
    if not isinstance(layers, tuple) or not all(isinstance(layer, str) for layer in layers):
        raise OptionError(f"float_layers must be a list of strings, got {_shown(layers)}")
    if len(layers) > MAX_LABELS or any(len(layer) > MAX_LABEL_LENGTH for layer in layers):
        raise OptionError(f"float_layers must be at most {MAX_LABELS:,} names of at most {MAX_LABEL_LENGTH} "
                          "characters")
    long = next((label for label in labels if len(label) > MAX_LABEL_LENGTH), None)
    if long is not None:
        raise OptionError(f"a label is {len(long):,} characters long; at most {MAX_LABEL_LENGTH} are allowed")
    for name in ("input_height", "input_width"):
        value = getattr(meta, name)
        if not _is_int(value) or not 1 <= value <= MAX_INPUT_SIDE:
            raise OptionError(f"{name} must be a whole number from 1 to {MAX_INPUT_SIDE}, got {_shown(value)}")
    for name in ("source_sha256", "edgelite_version"):
        if not isinstance(getattr(meta, name), str):
            raise OptionError(f"{name} must be a string, got {_shown(getattr(meta, name))}")
    if meta.input_scaling != "none" and meta.graph_scaling != "none":
        # the pixels would be scaled twice: every answer wrong, with exit 0
        raise OptionError(f"input_scaling is {meta.input_scaling}, but the graph already scales its input "
                          f"(graph_scaling {meta.graph_scaling}); input_scaling must be none")
    version = meta.format_version
    if not _is_int(version) or version < 1:
        raise OptionError(f"format_version must be a whole number from 1, got {_shown(version)}")
    if version > FORMAT_VERSION:
        raise OptionError(f"format_version {version} is newer than this edgelite writes ({FORMAT_VERSION})")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: object) -> str:
    """A value as a message shows it: its repr, cut short (it may come from a hostile file)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_checkpoint_metadata(path: Path) -> Optional[ArtifactMetadata]:
    """The metadata edgelite's training stored inside a .keras checkpoint, if any.

    Every metadata member's size is checked first (`check_checkpoint_members`):
    convert, evaluate and `train --init-from` all read the metadata before
    Keras opens the file.

    Raises:
        ModelFileError: a metadata member is oversized, or the metadata is invalid.
    """
    path = Path(path)
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        check_checkpoint_members(archive, path.name)
        if CHECKPOINT_METADATA not in archive.namelist():
            return None
        return ArtifactMetadata.from_json(archive.read(CHECKPOINT_METADATA))


def check_checkpoint_members(archive: zipfile.ZipFile, name: str) -> None:
    """Refuse a .keras zip whose JSON members (edgelite's and Keras's metadata) would unpack past a cap.

    Sizes come from the zip's directory, before anything is unpacked (zipfile
    never gives more than a member's recorded size). The weights member is
    not capped here: it is as large as the model.

    Raises:
        ModelFileError: naming the member, its size and the cap.
    """
    for info in archive.infolist():
        if info.filename.endswith(".json") and info.file_size > MAX_METADATA_MEMBER_BYTES:
            raise ModelFileError(
                f"{name}: its member {info.filename} unpacks to {info.file_size:,} bytes; metadata members are at "
                f"most {MAX_METADATA_MEMBER_BYTES >> 20} MB (the checkpoint is corrupt or hostile)")


def checkpoint_entries(metadata: ArtifactMetadata) -> dict[str, str]:
    """The zip entries that carry `metadata` inside a .keras checkpoint."""
    return {CHECKPOINT_METADATA: metadata.to_json()}

