"""The one preprocessing path: decode, orient, convert to RGB, resize.

Training, calibration, parity checks, benchmarks and the runtime all call
`preprocess`, so the pixels a model saw in training are the pixels it sees on
the device. The result is raw 0-255 RGB as float32; scaling lives inside the
model graph for edgelite artifacts (see `scale_pixels` for the other case).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from PIL import Image, ImageMode, ImageOps

from edgelite.errors import ImageError
from edgelite.modes import Decode, Interpolation, Scaling, check_mode

ImageSource = Union[str, Path, bytes, Image.Image, np.ndarray]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Pillow's own default bomb limit; we raise an error at it instead of warning.
MAX_PIXELS = 89_478_485
# Pixels alone undercount memory: a 16-bit or four-band image takes 2-4 bytes per pixel and more once converted.
# The largest decode allowed is what the pixel limit allows for 8-bit RGB (about 268 MB).
MAX_DECODED_BYTES = 3 * MAX_PIXELS
# Rows converted at a time from 16/32-bit grey to 8-bit, so no full-size float copy is ever made.
STRIP_ROWS = 256
# Fast decode keeps a JPEG at least this many times the model input on each side before resizing. At 1 a
# 400x533 photo for a 150x150 model decodes at 1/2 scale: 1.7x less decode + resize CPU, and a trained
# CNN's top-1 is unchanged on all 341 clothing validation photos (benchmarks/RESULTS.md, issue 22).
FAST_DECODE_MARGIN = 1

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

# scale, offset: pixel * scale + offset (per channel, R G B, where they are tuples)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SCALING: dict[str, tuple[Union[float, tuple[float, ...]], Union[float, tuple[float, ...]]]] = {
    "none": (1.0, 0.0), "rescale": (1.0 / 255.0, 0.0), "xception": (1.0 / 127.5, -1.0),
    # torchvision's recipe: x/255, minus the ImageNet mean, over its std
    "imagenet": (tuple(1.0 / (255.0 * s) for s in IMAGENET_STD),
                 tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))),
}


@dataclass
class PreparedImage:
    """Pixels ready for a model, plus what was done to get there."""

    pixels: np.ndarray
    notes: list[str] = field(default_factory=list)


def scale_pixels(pixels: np.ndarray, scaling: Scaling) -> np.ndarray:
    """Apply a named pixel scaling to raw 0-255 pixels, returning a new array."""
    scale, offset = _SCALING[check_mode(Scaling, scaling)]
    return (pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)


def scaling_factors(scaling: Scaling) -> tuple[Union[float, tuple[float, ...]], Union[float, tuple[float, ...]]]:
    """The (scale, offset) pair of a named pixel scaling: floats, or per-channel (R, G, B) tuples."""
    return _SCALING[check_mode(Scaling, scaling)]


def load_image(source: ImageSource) -> PreparedImage:
    """Decode an image (a path, encoded bytes or a PIL image) and return it as 8-bit RGB, full size.

    Applies the EXIF orientation. Grayscale, palette, CMYK, alpha and 16-bit
    images are converted to RGB, and each conversion is recorded in `notes`.

    Raises:
        ImageError: the file is missing, not an image, truncated, or too large.
    """
    if isinstance(source, np.ndarray):
        return PreparedImage(_checked_array(source).astype(np.uint8))
    image, notes = _decode(source, None)
    return PreparedImage(np.asarray(image, dtype=np.uint8), notes)


def _describe(source: ImageSource) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "image bytes"
    if isinstance(source, Image.Image):
        return "image"
    return str(source)


def image_decoded_bytes(image: Image.Image) -> int:
    """Memory the decoded image takes: width x height x bands x bytes per sample of its mode."""
    width, height = image.size
    sample = np.dtype(ImageMode.getmode(image.mode).typestr).itemsize
    return width * height * len(image.getbands()) * sample


def decoded_bytes(data: bytes) -> int:
    """What decoding these encoded image bytes would take, read from the header alone (nothing is decoded).

    Raises:
        ImageError: the bytes are not an image, or the image is over a limit.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                _check_size(image, "image bytes")
                return image_decoded_bytes(image)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError("image bytes: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb("image bytes") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"image bytes: truncated or corrupt image ({exc})") from None


def _check_size(image: Image.Image, shown: str) -> None:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise _bomb(shown)
    size = image_decoded_bytes(image)
    if size > MAX_DECODED_BYTES:
        raise ImageError(f"{shown}: {width}x{height} {image.mode} decodes to {size / 1e6:,.0f} MB, over the "
                         f"{MAX_DECODED_BYTES / 1e6:,.0f} MB limit per image; resize it or save it as 8-bit RGB",
                         reason="decoded_too_large")


def _decode(source: ImageSource, draft: Optional[int], grey_ok: bool = False,
            on_header: Optional[Callable[[int], None]] = None) -> tuple[Image.Image, list[str]]:
    """Decode to an RGB PIL image in display orientation.

    With `draft`, a JPEG is decoded at the largest DCT scale (1/2, 1/4, 1/8) that
    keeps both sides at least `draft` pixels: libjpeg skips most of the work.
    With `grey_ok`, a 16-bit grey image comes back as 8-bit grey ("L"), for a
    caller that resizes before widening it to RGB (a third of the memory).
    `on_header` gets the decoded size of an encoded image before it is decoded.
    """
    if isinstance(source, Image.Image):
        return _to_rgb(source, "image", grey_ok)
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream, name, shown = io.BytesIO(bytes(source)), "image bytes", "image bytes"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        stream, name, shown = _open_file(path), path.name, str(path)
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}; "
                         "pass a path, encoded bytes, a PIL image or an HxWx3 array")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with stream, Image.open(stream) as image:
                _check_size(image, shown)
                if on_header is not None:
                    on_header(image_decoded_bytes(image))
                if draft is not None and image.format == "JPEG":
                    image.draft(image.mode, (draft, draft))
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # not a copy: a full-size image is large enough once
                return _to_rgb(image, name, grey_ok)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{shown}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(shown) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{shown}: truncated or corrupt image ({exc})") from None


def _open_file(path: Path) -> io.BufferedReader:
    """The image file opened for reading, or an ImageError that says why not (not "corrupt")."""
    try:
        if path.is_dir():
            raise ImageError(f"{path}: is a directory, not an image")
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
        return open(path, "rb")
    except PermissionError:
        raise ImageError(f"{path}: permission denied; cannot read the image") from None
    except OSError as exc:  # a name too long, an I/O error: about the path, not the image in it
        raise ImageError(f"{_cut(str(path))}: cannot open it ({exc.strerror or exc})") from None
    except ValueError as exc:  # a NUL byte in the path
        raise ImageError(f"{_cut(str(path))}: not a usable path ({exc})") from None


def _cut(text: str, keep: int = 200) -> str:
    return text if len(text) <= keep else text[:keep] + "..."


def _bomb(shown: str) -> ImageError:
    return ImageError(f"{shown}: over the {MAX_PIXELS:,} pixel limit (possible decompression bomb); resize it first",
                      reason="bomb")


def _to_rgb(image: Image.Image, name: str, grey_ok: bool = False) -> tuple[Image.Image, list[str]]:
    mode = image.mode
    if mode == "RGB":
        return image, []
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = _narrow_grey(image)
        return (grey if grey_ok else grey.convert("RGB")), [f"{name}: 16-bit grayscale scaled to 8-bit RGB"]
    if mode == "F":
        raise ImageError(f"{name}: 32-bit float images are not supported; save it as 8-bit RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
        return flat, [f"{name}: {mode} image, transparency composited over white"]
    what = {"L": "grayscale", "1": "1-bit", "P": "palette", "CMYK": "CMYK"}.get(mode, mode)
    return image.convert("RGB"), [f"{name}: {what} image converted to RGB"]


def _narrow_grey(image: Image.Image) -> Image.Image:
    """16/32-bit grey scaled to 8 bits (65535 -> 255), a strip of rows at a time: no full-size wide copy."""
    width, height = image.size
    grey = np.empty((height, width), np.uint8)
    for top in range(0, height, STRIP_ROWS):
        wide = np.asarray(image.crop((0, top, width, min(height, top + STRIP_ROWS))), dtype=np.float64)
        grey[top:top + len(wide)] = np.clip(np.round(wide / 257.0), 0, 255)
    return Image.fromarray(grey)


def _checked_array(source: np.ndarray) -> np.ndarray:
    if source.ndim != 3 or source.shape[2] != 3:
        raise ImageError(f"expected an array of shape (height, width, 3), got {source.shape}")
    if source.shape[0] < 1 or source.shape[1] < 1:
        raise ImageError(f"expected an image of at least 1x1 pixels, got an array of shape {source.shape}")
    if np.issubdtype(source.dtype, np.floating) and not np.isfinite(source).all():
        raise ImageError("the pixel array holds NaN or infinite values")
    return np.clip(source, 0, 255)


def preprocess(
    source: ImageSource,
    height: int,
    width: int,
    interpolation: Interpolation = "bilinear",
    decode: Decode = "fast",
    as_uint8: bool = False,
    on_header: Optional[Callable[[int], None]] = None,
) -> PreparedImage:
    """Turn an image into a float32 (height, width, 3) array of raw 0-255 RGB.

    `source` is a path, encoded image bytes, a PIL image, or an HxWx3 array of
    RGB pixels in 0-255 (resized only if its size differs; never modified).

    `decode="fast"` decodes a JPEG at the smallest DCT scale (1/2, 1/4 or 1/8)
    that keeps both sides at least FAST_DECODE_MARGIN times the larger side of
    the model input, then resizes with `interpolation`. A JPEG under 2x the
    input and every other format decode exactly as with `decode="exact"`,
    which always decodes every pixel first.

    With `as_uint8`, an image decoded from a path, bytes or a PIL image comes
    back as uint8 instead: the same values without the float32 copy (an array
    already at the model's size is returned as float32 either way: its values
    may be fractional).

    `on_header`, for a path or encoded bytes, is called with what decoding
    will take in bytes (as `decoded_bytes` says) once the header is read and
    before any pixel is decoded; an exception it raises ends the call (the
    server admits a decode to its memory budget this way, opening the image once).

    Raises:
        ImageError: the image cannot be read, has the wrong shape, or is over
            MAX_PIXELS pixels or MAX_DECODED_BYTES decoded bytes.
    """
    check_mode(Decode, decode)
    resample = _RESAMPLE[check_mode(Interpolation, interpolation)]
    if isinstance(source, np.ndarray):
        pixels = _checked_array(source)
        if pixels.shape[:2] == (height, width):
            return PreparedImage(pixels.astype(np.float32, copy=True))
        image, notes = Image.fromarray(pixels.astype(np.uint8)), []
    else:
        image, notes = _decode(source, FAST_DECODE_MARGIN * max(height, width) if decode == "fast" else None,
                               grey_ok=True, on_header=on_header)
    if image.size != (width, height):
        image = image.resize((width, height), resample)
    if image.mode != "RGB":  # grey from a 16-bit image: resizing one band then widening gives the same pixels
        image = image.convert("RGB")
    return PreparedImage(np.asarray(image, dtype=np.uint8 if as_uint8 else np.float32), notes)
