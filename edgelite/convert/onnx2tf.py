"""onnx2tf behind one function: a channels-first ONNX classifier as a Keras model on raw pixels.

The TFLite exporter converts Keras models, so an ONNX (or PyTorch, through
ONNX) source reaches it as a Keras model: onnx2tf writes the graph as an NHWC
SavedModel, which Keras wraps, with the source's normalisation in front as a
Rescaling layer. Only the [onnx-in] and [torch] extras install onnx2tf.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import numpy as np

from edgelite.errors import ConversionError, missing_dependency
from edgelite.lazy import import_keras

if TYPE_CHECKING:
    from edgelite.convert.onnx_input import ImageInput
    from edgelite.convert.source import Normalization


# While onnx2tf converts: deep graphs recurse deeply in its Python code, but never without bound.
_CONVERT_RECURSION_LIMIT = 10_000


def _import_onnx2tf():
    # Importing onnx2tf sets the interpreter's recursion limit to the C int maximum. Left that way, a
    # deeply nested JSON document (a hostile artifact's metadata, a request body) overflows the C stack
    # and kills the process instead of raising RecursionError; so the limit is put back at once.
    limit = sys.getrecursionlimit()
    try:
        import onnx2tf.onnx2tf as engine
    except ImportError:
        raise missing_dependency("onnx2tf", "onnx-in") from None
    finally:
        sys.setrecursionlimit(limit)
    return engine


@contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def keras_from_onnx(model, image: ImageInput, scaling: Normalization):
    """A Keras model taking raw 0-255 RGB (N, H, W, 3) that computes the ONNX graph.

    Args:
        model: the ONNX graph, (N, 3, H, W) normalised pixels -> (N, classes).
        image: its image input.
        scaling: per-pixel scale and offset put in front.

    Raises:
        DependencyError: onnx2tf is not installed.
        ConversionError: onnx2tf could not convert the graph.
    """
    engine = _import_onnx2tf()
    _, keras = import_keras("convert")
    import onnx

    graph = onnx.ModelProto()
    graph.CopyFrom(model)  # onnx2tf edits the graph it is given
    with tempfile.TemporaryDirectory(prefix="edgelite-onnx2tf-") as work:
        fetch = engine.download_test_image_data
        # onnx2tf fetches sample photos from the network to try a fixed-batch image model on; any
        # images do for that (parity on real ones is edgelite's), and convert must work offline.
        engine.download_test_image_data = lambda: _sample_images(image)
        try:
            with _recursion_limit(_CONVERT_RECURSION_LIMIT):
                engine.convert(onnx_graph=graph, output_folder_path=work, output_signaturedefs=True,
                               non_verbose=True, not_use_onnxsim=True)
        except Exception as exc:  # onnx2tf raises many kinds
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConversionError(f"onnx2tf could not convert the ONNX graph: {first}") from None
        finally:
            engine.download_test_image_data = fetch
        layer = keras.layers.TFSMLayer(work, call_endpoint="serving_default")  # reads the weights in now
    raw = keras.Input((image.height, image.width, 3), batch_size=image.batch, name="image")
    scale, offset = scaling
    outputs = layer(keras.layers.Rescaling(scale, offset, name="edgelite_scaling")(raw))
    if isinstance(outputs, dict):
        outputs = list(outputs.values())[0]
    wrapped = keras.Model(raw, outputs)
    wrapped(np.zeros((image.batch or 1, image.height, image.width, 3), np.float32))
    return wrapped


def _sample_images(image: ImageInput) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (20, image.height, image.width, 3)).astype(np.float32)
