"""Fast (reduced DCT scale) and exact decoding agree on orientation, size and colours.

Where fast decoding does not apply (small JPEGs, other formats) the two are identical.
"""

import io

import numpy as np
import pytest
from PIL import Image

from edgelite.errors import ImageError, OptionError
from edgelite.runtime.metadata import ArtifactMetadata
from edgelite.runtime.preprocess import FAST_DECODE_MARGIN, _decode, load_image, preprocess

SIZE = 48


def quadrants(width: int, height: int) -> Image.Image:
    """Red, green, blue and white quadrants (clockwise from the top left), smooth enough for JPEG."""
    pixels = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    pixels[:h, :w] = (220, 30, 30)
    pixels[:h, w:] = (30, 200, 40)
    pixels[h:, w:] = (30, 40, 220)
    pixels[h:, :w] = (240, 240, 240)
    return Image.fromarray(pixels)


def quadrant_means(pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    # Means of the inner halves of each quadrant, away from the edges resizing blurs.
    rows = (slice(h // 4, h * 3 // 4), slice(h + h // 4, h + h * 3 // 4))
    cols = (slice(w // 4, w * 3 // 4), slice(w + w // 4, w + w * 3 // 4))
    quarters = [pixels[rows[0], cols[0]], pixels[rows[0], cols[1]], pixels[rows[1], cols[1]], pixels[rows[1], cols[0]]]
    return np.array([part.reshape(-1, 3).mean(axis=0) for part in quarters])


def _jpeg(tmp_path, image, name, **options):
    path = tmp_path / name
    image.save(path, "JPEG", quality=92, **options)
    return path


def _rotated(tmp_path):
    """Stored 640x480 with EXIF orientation 6: shown 480 wide, 640 high, rotated 90 degrees clockwise."""
    image = quadrants(640, 480)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(tmp_path, image, "rotated.jpg", exif=exif.tobytes())


CASES = {
    "large RGB JPEG": lambda tmp: _jpeg(tmp, quadrants(1024, 768), "large.jpg"),
    "EXIF-rotated JPEG": _rotated,
    "CMYK JPEG": lambda tmp: _jpeg(tmp, quadrants(800, 640).convert("CMYK"), "cmyk.jpg"),
    "grayscale JPEG": lambda tmp: _jpeg(tmp, quadrants(800, 640).convert("L"), "gray.jpg"),
    "progressive JPEG": lambda tmp: _jpeg(tmp, quadrants(1024, 768), "progressive.jpg", progressive=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_decode_keeps_orientation_size_and_colours(tmp_path, case):
    path = CASES[case](tmp_path)
    fast = preprocess(path, SIZE, SIZE, decode="fast")
    exact = preprocess(path, SIZE, SIZE, decode="exact")
    assert fast.pixels.shape == exact.pixels.shape == (SIZE, SIZE, 3)
    assert fast.notes == exact.notes
    # Orientation: a rotated or mirrored result would swap whole quadrants (differences of ~200 levels).
    np.testing.assert_allclose(quadrant_means(fast.pixels), quadrant_means(exact.pixels), atol=6)
    assert np.abs(fast.pixels - exact.pixels).mean() < 6


def test_fast_decode_really_decodes_less(tmp_path):
    path = CASES["large RGB JPEG"](tmp_path)
    image, _ = _decode(path, 2 * SIZE)  # 1024x768 at 1/8 is 128x96, still >= 96 on both sides
    assert image.size == (128, 96)
    rotated, _ = _decode(_rotated(tmp_path), 2 * SIZE)
    assert rotated.size == (120, 160)  # 640x480 at 1/4 (1/8 would be under 96), then turned upright
    assert load_image(path).pixels.shape == (768, 1024, 3)


@pytest.mark.parametrize("make", [
    lambda tmp: _jpeg(tmp, quadrants(120, 90), "tiny.jpg"),       # under 4x the input: fast changes nothing
    lambda tmp: quadrants(1024, 768).save(tmp / "big.png") or tmp / "big.png",
    lambda tmp: quadrants(1024, 768).save(tmp / "big.webp", quality=90) or tmp / "big.webp",
    lambda tmp: quadrants(800, 600).convert("P").save(tmp / "big.gif") or tmp / "big.gif",
])
def test_fast_decode_is_exact_where_it_does_not_apply(tmp_path, make):
    path = make(tmp_path)
    fast = preprocess(path, SIZE, SIZE, decode="fast")
    exact = preprocess(path, SIZE, SIZE, decode="exact")
    np.testing.assert_array_equal(fast.pixels, exact.pixels)


def test_encoded_bytes_decode_like_the_file(tmp_path):
    path = CASES["large RGB JPEG"](tmp_path)
    np.testing.assert_array_equal(preprocess(path.read_bytes(), SIZE, SIZE).pixels, preprocess(path, SIZE, SIZE).pixels)


@pytest.mark.parametrize("source, message", [
    (b"not an image at all", "image bytes: not an image Pillow can read"),
    (np.zeros((0, 0, 3), np.float32), "expected an image of at least 1x1 pixels"),
    (np.full((4, 4, 3), np.nan, np.float32), "NaN or infinite"),
    (12345, "cannot read an image from a int"),
])
def test_bad_sources_are_image_errors(source, message):
    with pytest.raises(ImageError, match=message):
        preprocess(source, SIZE, SIZE)


def test_a_directory_says_it_is_one(tmp_path):
    with pytest.raises(ImageError, match="is a directory, not an image"):
        preprocess(tmp_path, SIZE, SIZE)


def test_unknown_decode_mode():
    with pytest.raises(OptionError, match="unknown decode 'turbo'; expected one of fast, exact"):
        preprocess(np.zeros((4, 4, 3)), SIZE, SIZE, decode="turbo")


def test_metadata_records_the_decode_and_old_artifacts_read_as_exact():
    meta = ArtifactMetadata(("a", "b"), 32, 32)
    assert ArtifactMetadata.from_json(meta.to_json()).decode == "fast"
    old = meta.to_json().replace(', "decode": "fast"', "")
    assert '"decode"' not in old
    assert ArtifactMetadata.from_json(old).decode == "exact"


def test_fast_decode_goes_straight_to_the_input_size():
    """A 400x533 photo (the clothing set's usual size) for a 150x150 model decodes at 1/2 scale, not in full."""
    data = io.BytesIO()
    quadrants(400, 533).save(data, "JPEG", quality=90)
    image, _ = _decode(data.getvalue(), FAST_DECODE_MARGIN * 150)
    assert image.size == (200, 267)
    fast = preprocess(data.getvalue(), 150, 150, decode="fast")
    exact = preprocess(data.getvalue(), 150, 150, decode="exact")
    assert not np.array_equal(fast.pixels, exact.pixels)
    np.testing.assert_allclose(quadrant_means(fast.pixels), quadrant_means(exact.pixels), atol=3)
