"""Load the checkpoint to convert and describe it for the artifacts; run it as a classifier.

A checkpoint may be a Keras 3 `.keras` file (edgelite's training writes its
labels and preprocessing inside it, as `edgelite.json`), a Keras 2 `.h5` file
with preprocessing outside the model, a SavedModel directory, a PyTorch
`torch.export` program (`.pt2`) or an ONNX file: one row each in `SOURCE_KINDS`.
Evaluate and bench run a Keras one through `KerasClassifier`, the one Keras
classifier wrapper.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from edgelite import __version__
from edgelite.errors import MissingLabelsError, ModelFileError, OptionError
from edgelite.lazy import import_keras
from edgelite.modes import Decode, Interpolation, OutputKind, Scaling
from edgelite.runtime.metadata import KERAS_SUFFIXES, ArtifactMetadata, read_checkpoint_metadata
from edgelite.runtime.folder import class_folders
from edgelite.runtime.model import Predictions, predict_stream
from edgelite.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImageSource, PreparedImage, scaling_factors
from edgelite.runtime.preprocess import preprocess as preprocess_image
from edgelite.runtime.scores import class_count, class_scores


# A model's raw outputs (N, units) for a (N, H, W, 3) float32 batch of raw 0-255 RGB pixels.
Reference = Callable[[np.ndarray], np.ndarray]
# Per-pixel scale and offset (floats, or per-channel R, G, B tuples): pixel * scale + offset.
Normalization = tuple[Union[float, tuple[float, ...]], Union[float, tuple[float, ...]]]


@dataclass
class SourceModel:
    """A Keras model that takes raw 0-255 RGB, and what the artifacts will say about it.

    Attributes:
        model: the Keras model (raw 0-255 NHWC input) the TFLite exporter converts.
        metadata: what every artifact records.
        path: the checkpoint.
        notes: what loading did that the user should know.
        reference: the source model run by its own framework on raw pixels, for
            parity (None: the Keras model is the source).
        onnx_graph: a serialized float32 ONNX graph taking raw 0-255 NHWC pixels,
            when the source has one of its own (the ONNX exporter writes it
            instead of exporting the Keras model).
    """

    model: Any
    metadata: ArtifactMetadata
    path: Path
    notes: list[str]
    reference: Optional[Reference] = None
    onnx_graph: Optional[bytes] = None

    def run_reference(self, pixels: np.ndarray) -> np.ndarray:
        """The source model's raw outputs (N, units) on raw 0-255 pixels, run by its own framework."""
        if self.reference is not None:
            return np.asarray(self.reference(pixels), dtype=np.float32).reshape(len(pixels), -1)
        raw = self.model.predict(pixels, batch_size=32, verbose=0)
        return np.asarray(raw, dtype=np.float32).reshape(len(pixels), -1)


@dataclass(frozen=True)
class LoadRequest:
    """What the user said about a checkpoint: labels, preprocessing, where labels may come from."""

    labels: Optional[tuple[str, ...]] = None
    preprocess: Optional[Scaling] = None
    interpolation: Optional[Interpolation] = None
    decode: Optional[Decode] = None
    label_folders: Sequence[Optional[Path]] = ()
    name_unlabelled: bool = False
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None


@dataclass(frozen=True)
class SourceKind:
    """One kind of model `convert` reads: a row of `SOURCE_KINDS`.

    Attributes:
        name: what the kind is called in messages.
        suffixes: file suffixes it claims.
        loader: "module:function" that reads the path into a `SourceModel`, named
            rather than imported so its engine (torch, onnx2tf) loads only when
            such a file is converted, as an entry point does.
    """

    name: str
    suffixes: tuple[str, ...]
    loader: str

    def load(self, path: Path, request: LoadRequest) -> SourceModel:
        """Read `path` with this kind's loader."""
        module, function = self.loader.split(":")
        return getattr(importlib.import_module(module), function)(path, request)


def refuse_pickle(path: Path, request: LoadRequest) -> SourceModel:
    """Refuse a PyTorch pickle, saying how to export the model instead.

    torch.load unpickles, and unpickling runs whatever code the file carries: never done here.

    Raises:
        ModelFileError: always.
    """
    raise ModelFileError(
        f"{path.name} is a PyTorch pickle (torch.save); edgelite never unpickles a file. Export the model "
        "with torch.export and convert the .pt2: torch.export.save(torch.export.export(model.eval(), "
        f"(torch.randn(1, 3, H, W),)), '{path.stem}.pt2')")


SOURCE_KINDS: tuple[SourceKind, ...] = (
    SourceKind("PyTorch exported program", (".pt2",), "edgelite.convert.pytorch:load_exported_program"),
    SourceKind("ONNX model", (".onnx",), "edgelite.convert.onnx_input:load_onnx"),
    SourceKind("PyTorch pickle", (".pt", ".pth", ".pkl", ".ckpt"), "edgelite.convert.source:refuse_pickle"),
)


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a directory's files (names and contents, in order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: Path, labels: Optional[tuple[str, ...]] = None,
                    preprocess: Optional[Scaling] = None,
                    interpolation: Optional[Interpolation] = None, decode: Optional[Decode] = None,
                    label_folders: Sequence[Optional[Path]] = (), name_unlabelled: bool = False,
                    mean: Optional[tuple[float, ...]] = None, std: Optional[tuple[float, ...]] = None) -> SourceModel:
    """Load a checkpoint and wrap it so it takes raw 0-255 pixels.

    Labels come from `labels`, else from the checkpoint, else from the first of
    `label_folders` (calibration, then check images) whose class sub-folders are
    as many as the model's classes, in sorted order as Keras's
    `image_dataset_from_directory` numbers them (with a note saying so). With
    `name_unlabelled`, a checkpoint without labels names its classes class_0,
    class_1, ... instead (with a note): enough to compare models, not to score them.

    `mean` and `std` (per channel, R G B) replace ImageNet's in `--preprocess imagenet`.
    PyTorch (`.pt2`) and ONNX files are read by their own rows of `SOURCE_KINDS`.

    Raises:
        ModelFileError: the path is not a model edgelite can read.
        OptionError: labels or preprocessing are unknown and not given.
    """
    path = Path(path)
    request = LoadRequest(labels, preprocess, interpolation, decode, tuple(label_folders), name_unlabelled,
                          mean, std)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or directory")
    kind = next((k for k in SOURCE_KINDS if path.is_file() and path.suffix.lower() in k.suffixes), None)
    if kind is not None:
        return kind.load(path, request)
    return _load_keras_source(path, request)


def _load_keras_source(path: Path, request: LoadRequest) -> SourceModel:
    tf, keras = import_keras("convert")
    stored = read_checkpoint_metadata(path)
    model = _load_keras(path, keras)
    notes: list[str] = []

    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[3] != 3 or not shape[1] or not shape[2]:
        raise ModelFileError(f"{path.name}: expected an image model with input (None, H, W, 3), got {shape}")
    height, width = int(shape[1]), int(shape[2])
    outputs = int(model.output_shape[-1])

    output_kind = _output_kind(model, stored)
    scaling = _scaling(model, stored, request.preprocess, path)
    if scaling != "none":
        scale, offset = normalization(scaling, request.mean, request.std)
        raw = keras.Input((height, width, 3), name="image")
        model = keras.Model(raw, model(keras.layers.Rescaling(scale, offset, name="edgelite_scaling")(raw)))
        notes.append(f"scaling {scaling_name(scaling, request)} put inside the graph")
    metadata = describe_source(path, request, outputs, height, width, output_kind, scaling, stored, notes)
    model(tf.zeros((1, height, width, 3)))  # exporters need a model that has been called
    return SourceModel(model, metadata, path, notes)


def describe_source(path: Path, request: LoadRequest, outputs: int, height: int, width: int,
                    output_kind: OutputKind, scaling: Scaling, stored: Optional[ArtifactMetadata],
                    notes: list[str]) -> ArtifactMetadata:
    """The metadata every artifact of a checkpoint records (labels resolved as `load_checkpoint` says).

    Raises:
        MissingLabelsError: no labels given, stored or found in the label folders.
        OptionError: as many labels as the model has classes were not given.
    """
    names = request.labels or (stored.labels if stored else None)
    classes = class_count(outputs)
    if names is None and request.name_unlabelled:
        names = tuple(f"class_{i}" for i in range(classes))
        notes.append("no labels in the checkpoint; named them class_0, class_1, ...")
    elif names is None:
        names = labels_from_folders(path, request.label_folders, classes, notes)
    if len(names) != classes:
        raise OptionError(f"{len(names)} labels for a model with {classes} classes")
    return ArtifactMetadata(
        labels=tuple(names),
        input_height=height,
        input_width=width,
        input_scaling="none",
        graph_scaling=scaling if scaling != "none" else (stored.graph_scaling if stored else "none"),
        interpolation=request.interpolation or (stored.interpolation if stored else "bilinear"),
        decode=request.decode or (stored.decode if stored else "fast"),
        output_kind=output_kind,
        precision="float32",
        source_sha256=sha256_of(path),
        edgelite_version=__version__,
    )


def scaling_name(scaling: Scaling, request: LoadRequest) -> str:
    """The scaling as notes name it: with its mean and std when they are not ImageNet's."""
    if request.mean is None and request.std is None:
        return scaling
    means, stds = request.mean or IMAGENET_MEAN, request.std or IMAGENET_STD
    return f"{scaling} (mean {','.join(map(str, means))}, std {','.join(map(str, stds))})"


def normalization(scaling: Scaling, mean: Optional[tuple[float, ...]] = None,
                  std: Optional[tuple[float, ...]] = None) -> Normalization:
    """(scale, offset) of a named scaling; `mean`/`std` (0-1 units, R G B) override ImageNet's.

    Raises:
        OptionError: mean or std given with a scaling other than imagenet.
    """
    if mean is None and std is None:
        return scaling_factors(scaling)
    if scaling != "imagenet":
        raise OptionError(f"--mean and --std go with --preprocess imagenet, not {scaling}")
    means, stds = mean or IMAGENET_MEAN, std or IMAGENET_STD
    return tuple(1.0 / (255.0 * s) for s in stds), tuple(-m / s for m, s in zip(means, stds))


class KerasClassifier:
    """A loaded checkpoint with the runtime `Model`'s classifier face, for evaluate and bench.

    `prepare`, `run`, `class_scores` and `predict_iter` do what the runtime
    `Model`'s do, with TensorFlow for the inference, so a checkpoint is scored
    exactly as its artifacts are (one sigmoid unit and logits included).

    Attributes:
        source: the loaded checkpoint (model, metadata, notes).
        labels: class names, in output order.
    """

    def __init__(self, source: SourceModel):
        self.source = source
        self.labels = source.metadata.labels

    @property
    def metadata(self) -> ArtifactMetadata:
        return self.source.metadata

    def prepare(self, image: ImageSource) -> PreparedImage:
        """Decode and resize one image the way the checkpoint was trained."""
        meta = self.metadata
        return preprocess_image(image, meta.input_height, meta.input_width, meta.interpolation, meta.decode)

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """The raw outputs (N, units) of a (N, H, W, 3) batch of raw 0-255 pixels."""
        return np.asarray(self.source.model(pixels, training=False), dtype=np.float32).reshape(len(pixels), -1)

    def class_scores(self, raw: np.ndarray) -> np.ndarray:
        """Raw outputs as per-class probabilities (N, classes), as the runtime turns an artifact's."""
        return class_scores(raw, self.metadata.output_kind)

    def predict_iter(self, sources: Iterable[ImageSource], top_k: int = 5, batch_size: int = 32,
                     workers: int = 2) -> Iterator[Predictions]:
        """The runtime's pipeline (`predict_stream`) with this checkpoint's preprocessing and TensorFlow."""
        return predict_stream(sources, self.prepare, lambda pixels: self.class_scores(self.run(pixels)),
                              self.labels, top_k, batch_size, workers)


def load_classifier(path: Path, name_unlabelled: bool = False) -> KerasClassifier:
    """Load a checkpoint (see `load_checkpoint`) as a `KerasClassifier`.

    Raises:
        ModelFileError: the path is not a model edgelite can read.
        OptionError: labels or preprocessing are unknown (labels are named with `name_unlabelled`).
    """
    return KerasClassifier(load_checkpoint(path, name_unlabelled=name_unlabelled))


def _load_keras(path: Path, keras):
    try:
        if path.is_dir():
            return _load_saved_model(path, keras)
        if path.suffix not in KERAS_SUFFIXES:
            raise ModelFileError(f"{path.name}: unknown checkpoint type; expected .keras, .h5 or a SavedModel folder")
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except ModelFileError:
        raise
    except Exception as exc:  # Keras raises many kinds for a file that is not a model
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if "safe_mode" not in first:  # the safe_mode refusal says what to do: it is shown whole
            first = first[:200]
        raise ModelFileError(f"{path.name}: not a Keras model edgelite can load ({first})") from None


def _load_saved_model(path: Path, keras):
    if not (path / "saved_model.pb").is_file():
        raise ModelFileError(f"{path}: a directory without saved_model.pb is not a SavedModel")
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    spec = list(signature.structured_input_signature[1].values())[0]
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    inputs = keras.Input(tuple(spec.shape[1:]))
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        outputs = list(outputs.values())[0]
    return keras.Model(inputs, outputs)


def _scaling(model, stored: Optional[ArtifactMetadata], preprocess: Optional[Scaling], path: Path) -> Scaling:
    if preprocess is not None:
        return preprocess
    if stored is not None:
        return stored.input_scaling
    if any(type(layer).__name__ == "Rescaling" for layer in model.layers[:3]):
        return "none"
    raise OptionError(
        f"{path.name} does not say how its pixels are scaled; pass --preprocess xception "
        "(x/127.5-1), rescale (x/255) or none (the model takes raw 0-255)")


def _output_kind(model, stored: Optional[ArtifactMetadata]) -> OutputKind:
    if stored is not None:
        return stored.output_kind
    activation = getattr(model.layers[-1], "activation", None)
    if activation is None:  # a SavedModel layer: its activation is not visible, its output is
        return _observed_output_kind(model)
    name = getattr(activation, "__name__", "")
    return "softmax" if name == "softmax" else "sigmoid" if name == "sigmoid" else "logits"


def _observed_output_kind(model) -> OutputKind:
    shape = tuple(model.input_shape)
    images = np.random.default_rng(0).uniform(0, 255, (4, *shape[1:])).astype(np.float32)
    return observed_output_kind(np.asarray(model(images)).reshape(len(images), -1))


def observed_output_kind(raw: np.ndarray) -> OutputKind:
    """softmax/sigmoid when the scores (N, units) of a few random images are probabilities, else logits.

    Calling them logits when the graph ends in a softmax would make the runtime
    apply a second one (and `load` refuses such an artifact).
    """
    in_unit = bool(np.all((raw >= 0) & (raw <= 1)))
    if raw.shape[1] == 1:
        return "sigmoid" if in_unit else "logits"
    return "softmax" if in_unit and bool(np.allclose(raw.sum(axis=1), 1.0, atol=1e-4)) else "logits"


def class_folder_names(folder: Path) -> tuple[str, ...]:
    """`folder`'s class folder names (`edgelite.runtime.folder`'s rules), in Keras's class order."""
    return tuple(p.name for p in class_folders(folder))


def labels_from_folders(path: Path, folders: Sequence[Optional[Path]], classes: int,
                        notes: list[str]) -> tuple[str, ...]:
    """Class names from the first folder whose class sub-folders match the model's class count.

    Raises:
        MissingLabelsError: no folder has as many class sub-folders as the model has classes.
    """
    found: list[str] = []
    for folder in dict.fromkeys(Path(f) for f in folders if f is not None):
        names = class_folder_names(folder) if folder.is_dir() else ()
        if len(names) == classes:
            notes.append(f"labels taken from the {classes} class folders of {folder} in sorted order "
                         f"(Keras's image_dataset_from_directory order): {', '.join(names)}")
            return names
        found.append(f"{folder} has {len(names)} class folder{'' if len(names) == 1 else 's'}")
    reason = f" ({'; '.join(found)}, the model has {classes} classes)" if found else ""
    raise MissingLabelsError(f"{path.name} does not record its class labels{reason}; "
                             "pass --labels a,b,c or a labels file")
