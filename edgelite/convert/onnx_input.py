"""ONNX image classifiers as a convert source, run by onnxruntime for parity.

    edgelite convert model.onnx --out artifacts --preprocess imagenet --calibration data/train

An ONNX classifier takes channels-first (N, 3, H, W) float pixels already
normalised. Its ONNX artifacts are its own graph with the normalisation and the
NHWC-to-NCHW transpose put in front, so a device feeds raw 0-255 RGB (N, H, W, 3)
as it does to every edgelite artifact. Its TFLite artifacts come from onnx2tf
(edgelite/convert/onnx2tf.py). A `.pt2` program reaches here as the ONNX graph
torch.onnx exports from it (edgelite/convert/pytorch.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgelite.convert.source import (LoadRequest, Normalization, Reference, SourceModel, describe_source,
                                     normalization, observed_output_kind, scaling_name)
from edgelite.errors import ModelFileError, OptionError, missing_dependency

_FLOAT = 1  # onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class ImageInput:
    """The one image input of an ONNX classifier: (batch, 3, height, width), batch None when dynamic."""

    name: str
    batch: Optional[int]
    height: int
    width: int


def import_onnx():
    """onnx, or an install hint."""
    try:
        import onnx
    except ImportError:
        raise missing_dependency("onnx", "convert") from None
    return onnx


def read_onnx(path: Path):
    """Parse and check an ONNX file.

    Raises:
        ModelFileError: the file is not a whole, valid ONNX model.
    """
    onnx = import_onnx()
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf's DecodeError, onnx's ValidationError and friends
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFileError(f"{path.name}: not an ONNX model edgelite can read ({first})") from None
    return model


def image_input(model, name: str) -> ImageInput:
    """The graph's one image input, checked.

    Raises:
        ModelFileError: not exactly one input and one output, or an input that is
            not a float (N, 3, H, W) image with a fixed height and width.
    """
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1:
        listed = ", ".join(i.name for i in inputs)
        raise ModelFileError(f"{name}: expected one image input (N, 3, H, W), got {len(inputs)} inputs ({listed})")
    if len(graph.output) != 1:
        raise ModelFileError(f"{name}: expected one output (N, classes), got {len(graph.output)}")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if tensor.elem_type != _FLOAT or len(dims) != 4 or dims[1] != 3 or not dims[2] or not dims[3]:
        shape = "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
        raise ModelFileError(f"{name}: expected a float32 image input (N, 3, H, W), got {inputs[0].name!r} "
                             f"{shape} of ONNX type {tensor.elem_type}")
    return ImageInput(inputs[0].name, dims[0], int(dims[2]), int(dims[3]))


def with_raw_pixel_input(model, image: ImageInput, scaling: Normalization):
    """A copy of the graph that takes raw 0-255 RGB (N, H, W, 3): scale, offset and transpose in front."""
    onnx = import_onnx()
    from onnx import helper, numpy_helper

    prepared = onnx.ModelProto()
    prepared.CopyFrom(model)
    graph = prepared.graph
    taken = {t for n in graph.node for t in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    name = "image" if "image" not in taken else "edgelite_image"
    batch = image.batch if image.batch is not None else "N"
    scale, offset = (np.broadcast_to(np.asarray(v, np.float32), (3,)).copy() for v in scaling)
    graph.initializer.extend([numpy_helper.from_array(scale, "edgelite_scale"),
                              numpy_helper.from_array(offset, "edgelite_offset")])
    front = [helper.make_node("Mul", [name, "edgelite_scale"], ["edgelite_scaled"], name="edgelite_scale"),
             helper.make_node("Add", ["edgelite_scaled", "edgelite_offset"], ["edgelite_normalized"],
                              name="edgelite_offset"),
             helper.make_node("Transpose", ["edgelite_normalized"], [image.name], perm=[0, 3, 1, 2],
                              name="edgelite_nhwc_to_nchw")]
    nodes = front + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [i for i in graph.input if i.name != image.name]
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info(name, _FLOAT, [batch, image.height, image.width, 3]), *kept])
    onnx.checker.check_model(prepared)
    return prepared


def normalized_nchw(pixels: np.ndarray, scaling: Normalization) -> np.ndarray:
    """Raw 0-255 (N, H, W, 3) pixels as the normalised (N, 3, H, W) float32 a PyTorch-style model takes."""
    scale, offset = (np.asarray(v, np.float32) for v in scaling)
    return np.ascontiguousarray((pixels.astype(np.float32) * scale + offset).transpose(0, 3, 1, 2))


def run_in_batches(run: Callable[[np.ndarray], np.ndarray], batch: Optional[int], images: np.ndarray) -> np.ndarray:
    """`run` over (N, ...) images; a fixed batch size is filled with zeros at the end and trimmed."""
    if batch is None:
        return np.asarray(run(images), dtype=np.float32).reshape(len(images), -1)
    outputs = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        outputs.append(np.asarray(run(padded), dtype=np.float32).reshape(batch, -1)[:len(chunk)])
    return np.concatenate(outputs)


class OnnxRuntimeReference:
    """The original ONNX graph run by onnxruntime on raw pixels, normalised here in numpy."""

    def __init__(self, model, image: ImageInput, scaling: Normalization):
        try:
            import onnxruntime as ort
        except ImportError:
            raise missing_dependency("onnxruntime", "convert") from None
        self._session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self._image, self._scaling = image, scaling

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        def run(batch: np.ndarray) -> np.ndarray:
            return self._session.run(None, {self._image.name: batch})[0]

        return run_in_batches(run, self._image.batch, normalized_nchw(pixels, self._scaling))


def load_onnx(path: Path, request: LoadRequest) -> SourceModel:
    """An ONNX classifier as a `SourceModel` (see the module docstring).

    Raises:
        ModelFileError: not an ONNX file, or not one image input and one output.
        OptionError: --preprocess not given.
        DependencyError: onnx, onnxruntime or onnx2tf (for TFLite) missing.
    """
    model = read_onnx(path)
    image = image_input(model, path.name)
    return onnx_source(path, model, image, request, lambda scaling: OnnxRuntimeReference(model, image, scaling))


def onnx_source(path: Path, model, image: ImageInput, request: LoadRequest,
                reference_for: Callable[[Normalization], Reference], notes: Optional[list[str]] = None) -> SourceModel:
    """A `SourceModel` from a checked channels-first ONNX graph and the source's own runner.

    Args:
        path: the file the user gave (named in messages, hashed into the metadata).
        model: the ONNX graph (N, 3, H, W) -> (N, classes).
        image: its image input.
        request: labels and preprocessing the user gave.
        reference_for: the source run by its own framework, given the normalisation.
        notes: notes so far.
    """
    if request.preprocess is None:
        raise OptionError(
            f"{path.name} does not say how its pixels are scaled; pass --preprocess imagenet (torchvision's "
            "x/255, minus mean, over std), rescale (x/255), xception (x/127.5-1) or none")
    notes = list(notes or [])
    scaling = normalization(request.preprocess, request.mean, request.std)
    reference = reference_for(scaling)
    samples = np.random.default_rng(0).uniform(0, 255, (4, image.height, image.width, 3)).astype(np.float32)
    raw = np.asarray(reference(samples), dtype=np.float32).reshape(len(samples), -1)
    prepared = with_raw_pixel_input(model, image, scaling)
    from edgelite.convert.onnx2tf import keras_from_onnx

    keras_model = keras_from_onnx(model, image, scaling)
    notes.append(f"scaling {scaling_name(request.preprocess, request)} and the NHWC-to-NCHW transpose put inside the graph; "
                 "artifacts take raw 0-255 RGB (N, H, W, 3)")
    metadata = describe_source(path, request, raw.shape[1], image.height, image.width, observed_output_kind(raw),
                               request.preprocess, None, notes)
    return SourceModel(keras_model, metadata, path, notes, reference=reference,
                       onnx_graph=prepared.SerializeToString())
