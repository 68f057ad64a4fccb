import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from edgelite.errors import ImageError
from edgelite.runtime.preprocess import MAX_PIXELS, decoded_bytes, load_image, preprocess, scale_pixels


def _save(image: Image.Image, path, fmt="PNG", **kw):
    image.save(path, fmt, **kw)
    return path


def test_rgb_jpeg_resizes_to_float32_raw_pixels(photo):
    prepared = preprocess(photo, 20, 30)
    assert prepared.pixels.shape == (20, 30, 3)
    assert prepared.pixels.dtype == np.float32
    assert prepared.pixels.max() > 1.0  # raw 0-255, not scaled
    assert prepared.notes == []


@pytest.mark.parametrize("mode, note", [
    ("L", "grayscale image converted to RGB"),
    ("CMYK", "CMYK image converted to RGB"),
    ("P", "palette image converted to RGB"),
    ("RGBA", "RGBA image, transparency composited over white"),
    ("LA", "LA image, transparency composited over white"),
])
def test_non_rgb_modes_become_rgb_with_a_note(tmp_path, mode, note):
    source = Image.new("RGB", (16, 16), (10, 120, 240))
    image = source.convert(mode)
    path = _save(image, tmp_path / "x.tiff" if mode == "CMYK" else tmp_path / "x.png",
                 "TIFF" if mode == "CMYK" else "PNG")
    prepared = load_image(path)
    assert prepared.pixels.shape == (16, 16, 3)
    assert prepared.notes == [f"{path.name}: {note}"]


def test_transparent_pixels_are_composited_over_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    prepared = load_image(_save(image, tmp_path / "clear.png"))
    assert (prepared.pixels == 255).all()


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    wide = np.full((8, 8), 65535, dtype=np.uint16)
    wide[0, 0] = 257 * 100
    path = _save(Image.fromarray(wide), tmp_path / "deep.png")
    prepared = load_image(path)
    assert prepared.pixels[1, 1].tolist() == [255, 255, 255]
    assert prepared.pixels[0, 0].tolist() == [100, 100, 100]
    assert "16-bit" in prepared.notes[0]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    assert load_image(path).pixels.shape == (40, 20, 3)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(ImageError, match="not an image Pillow can read"):
        load_image(path)


def test_truncated_jpeg(tmp_path, photo):
    data = photo.read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt image"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # A PNG header claiming 20000 x 20000 pixels with almost no data.
    side = 20000
    path = tmp_path / "bomb.png"
    _save(Image.new("L", (1, 1)), path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    assert side * side > MAX_PIXELS
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(path)


def test_array_input_is_not_mutated():
    array = np.full((10, 12, 3), 7, dtype=np.uint8)
    out = preprocess(array, 10, 12).pixels
    out += 1
    assert (array == 7).all()


def test_array_input_with_wrong_shape():
    with pytest.raises(ImageError, match=r"expected an array of shape \(height, width, 3\)"):
        preprocess(np.zeros((4, 4)), 4, 4)


@pytest.mark.parametrize("scaling, low, high", [("none", 0, 255), ("rescale", 0, 1), ("xception", -1, 1)])
def test_scalings(scaling, low, high):
    pixels = np.array([0.0, 255.0], dtype=np.float32)
    assert scale_pixels(pixels, scaling).tolist() == pytest.approx([low, high])
    assert pixels.tolist() == [0.0, 255.0]


def test_decoded_bytes_are_limited_per_image_not_only_pixels(tmp_path):
    from tests.serve.conftest import png_header

    # 9000 x 9000 is under the pixel limit, but as RGBA it decodes to 324 MB: refused before decoding
    path = tmp_path / "wide.png"
    path.write_bytes(png_header(9000, 9000, 8, 6))
    assert 9000 * 9000 < MAX_PIXELS
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageError, match=r"9000x9000 RGBA decodes to 324 MB, over the 268 MB limit per image; "
                                             r"resize it or save it as 8-bit RGB") as caught:
            preprocess(source, 32, 32)
        assert caught.value.reason == "decoded_too_large"
    with pytest.raises(ImageError) as caught:
        decoded_bytes(path.read_bytes())
    assert caught.value.reason == "decoded_too_large"


@pytest.mark.parametrize("mode, dtype, refused", [("I;16", np.uint16, True), ("L", np.uint8, False)])
def test_bytes_per_sample_count_toward_the_limit(tmp_path, monkeypatch, mode, dtype, refused):
    data = np.full((100, 100), 7, dtype)
    path = _save(Image.fromarray(data), tmp_path / "grey.png")
    assert Image.open(path).mode == mode
    assert decoded_bytes(path.read_bytes()) == 100 * 100 * np.dtype(dtype).itemsize
    module = sys.modules["edgelite.runtime.preprocess"]  # the package exports a function of the same name
    monkeypatch.setattr(module, "MAX_DECODED_BYTES", 100 * 100 * 2 - 1)
    if refused:
        with pytest.raises(ImageError, match="100x100 I;16 decodes to 0 MB, over the 0 MB limit"):
            preprocess(path, 8, 8)
    else:
        assert preprocess(path, 8, 8).pixels.shape == (8, 8, 3)


def test_the_pixel_limit_has_its_own_reason(tmp_path):
    from tests.serve.conftest import png_header

    with pytest.raises(ImageError, match="decompression bomb") as caught:
        decoded_bytes(png_header(20000, 20000, 8, 0))
    assert caught.value.reason == "bomb"


def test_a_16_bit_grey_image_resized_gives_the_pixels_of_widening_first(tmp_path):
    wide = np.random.default_rng(0).integers(0, 65535, (301, 457), dtype=np.uint16)
    path = _save(Image.fromarray(wide), tmp_path / "deep.png")
    prepared = preprocess(path, 64, 80, "bicubic")
    full = Image.fromarray(load_image(path).pixels)
    expected = np.asarray(full.resize((80, 64), Image.Resampling.BICUBIC), dtype=np.float32)
    np.testing.assert_array_equal(prepared.pixels, expected)
