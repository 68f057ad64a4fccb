"""Lazy, quiet imports of TensorFlow and Keras for the heavy stages (train, convert).

`edgelite.runtime` never calls this.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from contextlib import contextmanager
from typing import Iterator

from edgelite.errors import missing_dependency
from edgelite.silence import silenced_fds


def import_keras(extra: str):
    """Import TensorFlow and Keras with their log noise turned down, or say how to install them.

    Args:
        extra: the edgelite extra that brings TensorFlow for this stage (convert, train).

    Returns:
        The (tensorflow, keras) modules.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        raise missing_dependency("TensorFlow", extra) from None
    tf.get_logger().setLevel("ERROR")
    return tf, keras


@contextmanager
def quiet_native() -> Iterator[None]:
    """Silence what TensorFlow, tf2onnx and the converters print, at the file-descriptor level.

    Their C++ code writes to fd 1 and 2 directly, past Python's sys.stdout. With
    EDGELITE_DEBUG=1 nothing is silenced. The CLI's progress bar writes to its own
    copy of stderr, so it keeps drawing.
    """
    if os.environ.get("EDGELITE_DEBUG") == "1":
        yield
        return
    with silenced_fds(1, 2), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
