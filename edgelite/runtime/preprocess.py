"""The one preprocessing path: decode, orient, convert to RGB, resize.

Training, calibration, parity checks, benchmarks and the runtime all call
`preprocess`, so the pixels a model saw in training are the pixels it sees on
the device. The result is raw 0-255 RGB as float32; scaling lives inside the
model graph for edgelite artifacts (see `scale_pixels` for the other case).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from edgelite.errors import ImageError
from edgelite.modes import Interpolation, Scaling, check_mode

ImageSource = Union[str, Path, Image.Image, np.ndarray]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Pillow's own default bomb limit; we raise an error at it instead of warning.
MAX_PIXELS = 89_478_485

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

# scale, offset: pixel * scale + offset
_SCALING = {"none": (1.0, 0.0), "rescale": (1.0 / 255.0, 0.0), "xception": (1.0 / 127.5, -1.0)}


@dataclass
class PreparedImage:
    """Pixels ready for a model, plus what was done to get there."""

    pixels: np.ndarray
    notes: list[str] = field(default_factory=list)


def scale_pixels(pixels: np.ndarray, scaling: Scaling) -> np.ndarray:
    """Apply a named pixel scaling to raw 0-255 pixels, returning a new array."""
    scale, offset = _SCALING[check_mode(Scaling, scaling)]
    return (pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)


def scaling_factors(scaling: Scaling) -> tuple[float, float]:
    """The (scale, offset) pair of a named pixel scaling."""
    return _SCALING[check_mode(Scaling, scaling)]


def load_image(source: str | Path | Image.Image) -> PreparedImage:
    """Decode an image file (or take a PIL image) and return it as 8-bit RGB.

    Applies the EXIF orientation. Grayscale, palette, CMYK, alpha and 16-bit
    images are converted to RGB, and each conversion is recorded in `notes`.

    Raises:
        ImageError: the file is missing, not an image, truncated, or too large.
    """
    if isinstance(source, Image.Image):
        return _to_rgb(source, "image")
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise _bomb(path)
                image.load()
                return _to_rgb(ImageOps.exif_transpose(image), path.name)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(path) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: truncated or corrupt image ({exc})") from None


def _bomb(path: Path) -> ImageError:
    return ImageError(f"{path}: over the {MAX_PIXELS:,} pixel limit (possible decompression bomb); resize it first")


def _to_rgb(image: Image.Image, name: str) -> PreparedImage:
    mode = image.mode
    if mode == "RGB":
        return PreparedImage(np.asarray(image, dtype=np.uint8))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        wide = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
        return PreparedImage(np.repeat(gray[..., None], 3, axis=2),
                             [f"{name}: 16-bit grayscale scaled to 8-bit RGB"])
    if mode == "F":
        raise ImageError(f"{name}: 32-bit float images are not supported; save it as 8-bit RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
        return PreparedImage(np.asarray(flat, dtype=np.uint8),
                             [f"{name}: {mode} image, transparency composited over white"])
    converted = image.convert("RGB")
    what = {"L": "grayscale", "1": "1-bit", "P": "palette", "CMYK": "CMYK"}.get(mode, mode)
    return PreparedImage(np.asarray(converted, dtype=np.uint8), [f"{name}: {what} image converted to RGB"])


def preprocess(
    source: ImageSource,
    height: int,
    width: int,
    interpolation: Interpolation = "bilinear",
) -> PreparedImage:
    """Turn an image file, PIL image or array into a float32 (height, width, 3) array of 0-255 RGB.

    An array is taken as RGB pixels in 0-255 (HxWx3); it is resized only if its
    size differs. The caller's array is never modified.

    Raises:
        ImageError: the image cannot be read or has the wrong shape.
    """
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3:
            raise ImageError(f"expected an array of shape (height, width, 3), got {source.shape}")
        if source.shape[:2] == (height, width):
            return PreparedImage(source.astype(np.float32, copy=True))
        image = Image.fromarray(np.clip(source, 0, 255).astype(np.uint8))
        prepared = PreparedImage(np.asarray(image))
    else:
        prepared = load_image(source)
    resample = _RESAMPLE[check_mode(Interpolation, interpolation)]
    rgb = Image.fromarray(prepared.pixels)
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), resample)
    return PreparedImage(np.asarray(rgb, dtype=np.float32), prepared.notes)


def list_images(folder: Path) -> list[Path]:
    """All image files below `folder`, sorted, by file suffix."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
