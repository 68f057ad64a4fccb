"""`load` an artifact and `predict` with it: the runtime's public face."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from edgelite.errors import ImageError, ModelFileError, OptionError
from edgelite.modes import Decode, Interpolation, OutputKind, Scaling, TFLiteInterpreter, check_mode
from edgelite.runtime.backends import OnnxBackend, TensorSpec, TFLiteBackend
from edgelite.runtime.input_tensor import InputTensor
from edgelite.runtime.manifest import ManifestCheck, check_manifest
from edgelite.runtime.metadata import METADATA_KEY, ArtifactMetadata
from edgelite.runtime.predictions import (READ_AHEAD_BATCHES, Prediction, Predictions, _source_name,  # noqa: F401
                                          predict_stream, rank)
from edgelite.runtime.preprocess import ImageSource, PreparedImage, preprocess, scaling_factors
from edgelite.runtime.scores import class_count, class_scores
from edgelite.runtime.tflite_format import TFLiteFile, read_tflite, read_tflite_bytes
from edgelite.silence import silenced_fds

DEFAULT_SIZE = 224
# An ONNX file without external data is one protobuf, which cannot exceed 2 GiB.
MAX_PROTOBUF_BYTES = (1 << 31) - 1


class Model:
    """A loaded artifact: preprocessing, (de)quantization and labels around a backend.

    Build it with `load`. `predict` and `predict_batch` are safe to call from
    several threads. `manifest` says whether the file was checked against a
    manifest.json beside it (None: there is none, or it does not list the file).
    """

    def __init__(self, path: Path, backend, metadata: Optional[ArtifactMetadata],
                 tflite: Optional[TFLiteFile] = None, labels: Optional[Sequence[str]] = None,
                 scaling: Optional[Scaling] = None, decode: Optional[Decode] = None,
                 manifest: Optional[ManifestCheck] = None):
        self.path = path
        self.manifest = manifest
        self.backend = backend
        self.metadata = metadata
        self.tflite = tflite
        self.assumptions: list[str] = []
        self.input, self.output = self._tensors()
        self._channels_first = len(self.input.shape) == 4 and self.input.shape[1] == 3 and self.input.shape[3] != 3
        self.height, self.width = self._input_size()
        self.interpolation: Interpolation = metadata.interpolation if metadata else "bilinear"
        recorded: Decode = metadata.decode if metadata else "fast"
        self.decode: Decode = check_mode(Decode, decode) if decode else recorded
        self.input_scaling: Scaling = self._input_scaling(scaling)
        self._input_tensor = InputTensor(self.input, *scaling_factors(self.input_scaling))
        self.output_kind: Optional[OutputKind] = metadata.output_kind if metadata else None
        self.labels = self._labels(labels)
        self._check_first_run(labels)

    # -- what the model is -------------------------------------------------
    def _tensors(self) -> tuple[TensorSpec, TensorSpec]:
        """The image input and the scores output, refused when their dtype is unusable.

        Their quantization was checked with every other tensor's (`backends._check_graph`).
        """
        inputs, outputs = self.backend.inputs, self.backend.outputs
        if len(inputs) != 1 or not outputs:
            raise ModelFileError(f"{self.path.name}: expected one image input and at least one output, "
                                 f"got {len(inputs)} inputs and {len(outputs)} outputs")
        for role, spec in (("input", inputs[0]), ("output", outputs[0])):
            if not (np.issubdtype(spec.dtype, np.floating) or spec.dtype in (np.uint8, np.int8)):
                raise ModelFileError(f"{self.path.name}: the {role} tensor is {spec.dtype.name}; "
                                     "expected float, uint8 or int8")
        return inputs[0], outputs[0]

    def _input_size(self) -> tuple[int, int]:
        shape, name = self.input.shape, self.path.name
        if len(shape) != 4:
            raise ModelFileError(f"{name}: expected a 4-D image input, got shape {shape}")
        height, width = (shape[2:4] if self._channels_first else shape[1:3])
        channels = shape[1] if self._channels_first else shape[3]
        if channels not in (3, -1):
            raise ModelFileError(f"{name}: expected an RGB input with 3 channels, got shape {shape}")
        if any(dim == 0 or dim < -1 for dim in (height, width)):
            raise ModelFileError(f"{name}: the input shape {shape} has no usable image size")
        if self.metadata:
            claimed = (self.metadata.input_height, self.metadata.input_width)
            for what, said, actual in zip(("height", "width"), claimed, (height, width)):
                if actual > 0 and said != actual:
                    raise ModelFileError(
                        f"{name}: the metadata says input {what} {said}, but the input tensor has {actual} "
                        f"(shape {shape}); the file is inconsistent: convert the checkpoint again")
            return claimed
        if height > 0 and width > 0:
            return height, width
        self.assumptions.append(f"input size unknown; assumed {DEFAULT_SIZE}x{DEFAULT_SIZE}")
        return DEFAULT_SIZE, DEFAULT_SIZE

    def _input_scaling(self, scaling: Optional[Scaling]) -> Scaling:
        if scaling is not None:
            return check_mode(Scaling, scaling)
        if self.metadata:
            return self.metadata.input_scaling
        if not self.input.quantized and np.issubdtype(self.input.dtype, np.floating):
            self.assumptions.append(
                "no edgelite metadata: assumed the model takes raw 0-255 RGB; "
                "pass --preprocess rescale|xception if it expects scaled pixels")
        return "none"

    def _labels(self, labels: Optional[Sequence[str]], count: Optional[int] = None) -> tuple[str, ...]:
        if count is None:
            count = self.output.shape[-1] if self.output.shape and self.output.shape[-1] > 0 else 0
        classes = class_count(count)
        if labels is not None:  # their count is checked against a real output in _check_first_run
            return tuple(labels)
        if self.metadata:
            return self.metadata.labels
        note = "no labels in the model; named them class_0, class_1, ... (pass --labels)"
        if note not in self.assumptions:
            self.assumptions.append(note)
        return tuple(f"class_{i}" for i in range(classes))

    def _check_first_run(self, labels: Optional[Sequence[str]]) -> None:
        """Run one zero image: a file the interpreter rejects fails here, at load, as a ModelFileError.

        The output it gives is the truth the labels are checked against.
        """
        with silenced_fds(2):  # an interpreter that rejects a file prints its own lines; the error says it in one
            raw = self.run(np.zeros((1, self.height, self.width, 3), np.float32))
        count = raw.shape[1]
        if count < 1:
            raise ModelFileError(f"{self.path.name}: the model's output is empty")
        self._check_output_kind(raw)
        classes = class_count(count)
        if len(self.labels) == classes:
            return
        if labels is None and self.metadata is None:
            self.labels = self._labels(None, count)
        elif labels is None:
            raise ModelFileError(
                f"{self.path.name}: the metadata lists {len(self.labels)} labels, but the model has {classes} "
                f"classes ({count} output{'s' if count > 1 else ''}); the file is inconsistent: "
                "convert the checkpoint again")
        else:
            raise OptionError(f"{len(labels)} labels given, but the model has {classes} classes")

    def _check_output_kind(self, raw: np.ndarray) -> None:
        """Refuse metadata whose output kind the graph contradicts: the scores would be silently wrong.

        `logits` on a graph that ends in SOFTMAX (or LOGISTIC) would be put
        through a second softmax, flattening every score; `softmax`/`sigmoid` on
        a graph whose scores leave 0..1 would be shown as they are.
        """
        kind = self.output_kind
        if kind is None:
            return
        final = getattr(self.backend, "final_op", None)
        ends_in = {"SOFTMAX": "softmax", "LOGISTIC": "sigmoid"}.get(final or "")
        in_unit = bool(np.all((raw >= -1e-3) & (raw <= 1 + 1e-3)))
        is_distribution = raw.shape[1] > 1 and in_unit and bool(np.allclose(raw.sum(axis=1), 1.0, atol=1e-3))
        problem = None
        if kind == "logits" and ends_in:
            problem = f"the graph ends in {final}, so its output is already {ends_in} scores"
        elif kind == "logits" and final is None and is_distribution:
            problem = "the output of a test image is already a probability distribution (it sums to 1)"
        elif kind != "logits" and not in_unit:
            problem = f"the output of a test image has values outside 0..1 ({float(raw.min()):.3g} to " \
                      f"{float(raw.max()):.3g})"
        if problem:
            raise ModelFileError(f"{self.path.name}: the metadata says output_kind {kind}, but {problem}; "
                                 "the file is inconsistent: convert the checkpoint again")

    # -- running --------------------------------------------------------------
    def prepare(self, source: ImageSource, as_uint8: bool = False,
                on_header: Optional[Callable[[int], None]] = None) -> PreparedImage:
        """Decode and resize one image the way this model was trained.

        With `as_uint8`, an image decoded from a file, bytes or a PIL image
        comes back as uint8 (the same values, a quarter of the memory, and
        `run` converts it in fewer passes); an array at the input size stays
        float32. `on_header` is `preprocess`'s: told the decoded size first.
        """
        return preprocess(source, self.height, self.width, self.interpolation, self.decode, as_uint8=as_uint8,
                          on_header=on_header)

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """Run a (N, H, W, 3) batch of raw 0-255 pixels; return the dequantized raw output.

        Raises:
            OptionError: the batch has the wrong shape or no image.
            ImageError: a pixel is NaN or infinite.
        """
        if pixels.ndim != 4 or pixels.shape[1:] != (self.height, self.width, 3):
            raise OptionError(f"expected a batch of shape (N, {self.height}, {self.width}, 3), got {pixels.shape}")
        if len(pixels) == 0:
            raise OptionError(f"expected at least one image, got an empty batch of shape {pixels.shape}")
        if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
            # quantizing NaN gives an arbitrary integer: the model would answer with finite, meaningless scores
            raise ImageError("the pixels hold NaN or infinite values; expected raw 0-255 RGB")
        batch = self._input_tensor(pixels)
        if self._channels_first:
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if self.backend.dynamic_batch or len(batch) == 1:
            raw = self.backend.run(batch)
        else:
            raw = np.concatenate([self.backend.run(batch[i:i + 1]) for i in range(len(batch))])
        if raw.ndim < 1 or raw.shape[0] != len(batch):
            raise ModelFileError(f"{self.path.name}: the output has shape {raw.shape} for {len(batch)} "
                                 f"image{'s' if len(batch) > 1 else ''}; expected one row per image")
        return self._dequantize(raw)

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        spec = self.output
        if spec.quantized:
            return ((raw.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)).reshape(len(raw), -1)
        return raw.astype(np.float32).reshape(len(raw), -1)

    def class_scores(self, raw: np.ndarray) -> np.ndarray:
        """Turn raw outputs into per-class probabilities (N, classes)."""
        return class_scores(raw, self.output_kind or self._guess_output_kind(raw))

    def _guess_output_kind(self, raw: np.ndarray) -> OutputKind:
        in_unit = bool(np.all((raw >= -1e-3) & (raw <= 1 + 1e-3)))
        sums_to_one = bool(np.allclose(raw.sum(axis=1), 1.0, atol=1e-2))
        kind: OutputKind = ("sigmoid" if raw.shape[1] == 1 and in_unit
                            else "softmax" if in_unit and sums_to_one else "logits")
        note = f"output kind unknown; treated the output as {kind}"
        if note not in self.assumptions:
            self.assumptions.append(note)
        return kind

    def predict(self, source: ImageSource, top_k: int = 5) -> Predictions:
        """Ranked (label, score) for one image: a path, encoded bytes, a PIL image or an HxWx3 array.

        The result is a list of `Prediction`; its `notes` say how the image was read.

        Raises:
            ImageError: the image cannot be read.
        """
        prepared = self.prepare(source, as_uint8=True)
        ranked = self.rank(self.class_scores(self.run(prepared.pixels[None])), top_k)[0]
        return Predictions(ranked, prepared.notes, _source_name(source))

    def predict_batch(self, sources: Sequence[ImageSource], top_k: int = 5) -> list[Predictions]:
        """Ranked predictions for several images, run as one batch.

        An image that cannot be read gets a `Predictions` with its `error`; the
        others are still classified.

        Raises:
            OptionError: no images were given.
        """
        sources = list(sources)
        if not sources:
            raise OptionError("no images given to predict_batch")
        return list(self.predict_iter(sources, top_k, batch_size=len(sources)))

    def predict_iter(self, sources: Iterable[ImageSource], top_k: int = 5, batch_size: int = 8,
                     workers: Optional[int] = None) -> Iterator[Predictions]:
        """Predictions for a stream of images, in input order, decoding ahead while the model runs.

        `workers` threads decode and resize the next images (Pillow releases
        the GIL there) while the interpreter runs a batch of up to `batch_size`.
        Memory stays bounded whatever the length of `sources`: at most
        3 x `batch_size` images are read and not yet returned. An image that
        cannot be read comes back as a `Predictions` with its `error`; the stream goes on.
        If `sources` itself raises (a generator that fails), the results of
        every item it yielded before are returned first, then its exception is
        raised from this iterator: nothing already read is lost, and the
        failure is not mistaken for one image's.

        Args:
            sources: paths, encoded bytes, PIL images or arrays; read lazily.
            top_k: classes per image.
            batch_size: images per inference call.
            workers: decoding threads (default: up to 4, one per CPU).
        """
        return predict_stream(sources, self._prepare_uint8, lambda pixels: self.class_scores(self.run(pixels)),
                              self.labels, top_k, batch_size, workers)

    def _prepare_uint8(self, source: ImageSource) -> PreparedImage:
        return self.prepare(source, as_uint8=True)

    def rank(self, scores: np.ndarray, top_k: int, order: Optional[np.ndarray] = None) -> list[list[Prediction]]:
        """Top-k predictions of each row of class scores (`order`: each row's classes best first, if known)."""
        return rank(scores, self.labels, top_k, order)

    # -- description ------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return f"{self.backend.kind} {self.backend.version}"

    @property
    def format(self) -> str:
        return "tflite" if isinstance(self.backend, TFLiteBackend) else "onnx"


def _read_metadata(raw: Optional[Union[str, bytes]], path: Path) -> Optional[ArtifactMetadata]:
    if raw is None:
        return None
    try:
        return ArtifactMetadata.from_json(raw)
    except ModelFileError as exc:
        raise ModelFileError(f"{path.name}: {exc}") from None


def _read_file(path: Path, read: Callable[[Path], bytes]) -> bytes:
    try:
        return read(path)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def load(path: Union[str, Path], threads: Optional[int] = None,
         labels: Optional[Sequence[str]] = None, scaling: Optional[Scaling] = None,
         interpreter: TFLiteInterpreter = "auto", decode: Optional[Decode] = None) -> Model:
    """Load a .tflite or .onnx artifact with the backend its file type calls for.

    Args:
        path: the artifact.
        threads: CPU threads for the interpreter (None: the backend's default).
        labels: class names, for files without edgelite metadata (overrides metadata).
        scaling: pixel scaling ("none", "rescale", "xception") for files without metadata.
        interpreter: for .tflite files, "auto" (ai-edge-litert, else tflite-runtime),
            or one of "litert", "tflite-runtime", "tf.lite" (TensorFlow's, only when named).
        decode: "fast" or "exact" JPEG decoding, instead of what the metadata records.

    The file is checked against itself before it is used: its edgelite
    metadata (types and ranges of every field, a known format version) must
    match its own tensors (input height and width, one label per class), the
    input and output must be usable image and score tensors, and one
    inference on a zero image must run. Only a .tflite's 8-byte header is
    read before the file is accepted as a flatbuffer. When a manifest.json
    beside the file lists it (convert writes one), the file's size and
    sha256 must be the ones it records.

    Raises:
        ModelFileError: the file is missing, a directory, of an unknown type,
            corrupt, rejected by the interpreter, or inconsistent with its metadata.
        OptionError: `labels` do not match the model's classes.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, not a model file; pass a .tflite or .onnx file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if threads is not None and threads < 1:
        raise OptionError(f"threads must be at least 1, got {threads}")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        content = _read_file(path, read_tflite_bytes)
        verified = check_manifest(path, content)
        tflite = read_tflite(content, path.name)
        metadata = _read_metadata(tflite.metadata.get(METADATA_KEY), path)
        backend = TFLiteBackend(content, path.name, threads, tflite.operator_codes,
                                check_mode(TFLiteInterpreter, interpreter))
        return Model(path, backend, metadata, tflite, labels, scaling, decode, verified)
    if suffix == ".onnx":
        if path.stat().st_size > MAX_PROTOBUF_BYTES:
            raise ModelFileError(f"{path.name}: not a valid .onnx file ({path.stat().st_size:,} bytes; an ONNX "
                                 "model file is a protobuf of at most 2 GiB, larger weights sit in external files)")
        verified = check_manifest(path)
        backend = OnnxBackend(path, threads)
        metadata = _read_metadata(backend.custom_metadata.get(METADATA_KEY), path)
        return Model(path, backend, metadata, None, labels, scaling, decode, verified)
    raise ModelFileError(f"{path.name}: unknown model type {suffix or '(no suffix)'}; expected .tflite or .onnx")
