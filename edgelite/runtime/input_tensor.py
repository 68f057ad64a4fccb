"""Raw 0-255 pixels to a model's input tensor: scaling and quantization in a few in-place passes.

`Model.run` used to build the input with about nine whole-array numpy passes
(a float copy, scale, offset, a cast, divide, round, add, clip, a cast), each
into a new array. `InputTensor` does the same arithmetic, in the same order
and float32 precision (so the integers fed to the model are the same), in
place in a work buffer kept per thread (as large as its largest batch so far;
a smaller batch uses the front of it), and skips the steps that are
identities (a scale of 1, an offset or zero point of 0). An 8-bit batch for
a uint8 input that takes raw pixels needs no pass at all.
"""

from __future__ import annotations

import math
import threading
from typing import Union

import numpy as np

from edgelite.runtime.backends import TensorSpec

Factor = Union[float, tuple[float, ...]]


def _identity(value: Factor, one: float) -> bool:
    return all(v == one for v in (value if isinstance(value, tuple) else (value,)))


class InputTensor:
    """Turns (N, H, W, 3) raw pixels into the input tensor of one model.

    Safe to call from several threads: each thread has its own buffers. The
    array returned may be such a buffer (or the caller's own uint8 pixels), so
    it is valid until the same thread converts its next batch; the backend
    copies it into the interpreter before then.
    """

    def __init__(self, spec: TensorSpec, scale: Factor, offset: Factor):
        self.spec = spec
        self._scale = None if _identity(scale, 1.0) else np.float32(scale)
        self._offset = None if _identity(offset, 0.0) else np.float32(offset)
        self._quantized = spec.quantized
        if self._quantized:
            info = np.iinfo(spec.dtype)
            self._limits = (info.min, info.max)
            self._divisor = None if spec.scale == 1.0 else np.float32(spec.scale)
            self._zero_point = spec.zero_point or None
        # 8-bit pixels go in as they are: the model's uint8 input takes raw 0-255 values.
        self._passthrough = (self._quantized and spec.dtype == np.uint8 and self._scale is None
                             and self._offset is None and self._divisor is None and self._zero_point is None)
        self._local = threading.local()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """The model's input for `pixels` (any real dtype, values checked finite by the caller)."""
        if self._passthrough and pixels.dtype == np.uint8:
            return np.ascontiguousarray(pixels)
        work = self._buffer("work", pixels.shape, np.float32)
        np.copyto(work, pixels, casting="unsafe")  # the float32 cast, as astype(np.float32) made it
        if self._scale is not None:
            np.multiply(work, self._scale, out=work)
        if self._offset is not None:
            np.add(work, self._offset, out=work)
        if not self._quantized:
            if self.spec.dtype == np.float32:
                return work
            out = self._buffer("out", pixels.shape, self.spec.dtype)
            np.copyto(out, work, casting="unsafe")
            return out
        if self._divisor is not None:
            np.divide(work, self._divisor, out=work)
        np.rint(work, out=work)  # what np.round does at 0 decimals: halves to even
        if self._zero_point is not None:
            np.add(work, np.float32(self._zero_point), out=work)
        np.clip(work, *self._limits, out=work)
        out = self._buffer("out", pixels.shape, self.spec.dtype)
        np.copyto(out, work, casting="unsafe")
        return out

    def _buffer(self, role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """This thread's `role` buffer as an array of `shape`: one allocation per role, grown when a batch is larger."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        count = math.prod(shape)
        flat = buffers.get(role)
        if flat is None or flat.size < count:
            flat = buffers[role] = np.empty(count, dtype)
        return flat[:count].reshape(shape)
