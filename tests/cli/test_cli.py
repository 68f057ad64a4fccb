"""The CLI through click's CliRunner: exit codes and the exact messages a user sees."""

import json
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgelite.cli import cli
from tests.conftest import artifact


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_help_has_an_example():
    for command in ([], ["convert"], ["predict"], ["info"], ["demo"], ["train"], ["train", "scratch"]):
        result = run(*command, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.output


def test_predict_table_and_json(artifacts, color_data):
    model = artifact(artifacts, "tflite", "int8")
    image = next((color_data / "validation" / "red").iterdir())
    result = run("predict", model, image, "--top-k", "2")
    assert result.exit_code == 0, result.output
    assert "red" in result.stdout
    result = run("predict", model, image, image, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [r["predictions"][0]["label"] for r in data["results"]] == ["red", "red"]
    assert len(data["results"][0]["predictions"]) == 3
    assert data["errors"] == []


def test_info_json(artifacts):
    result = run("info", artifact(artifacts, "tflite", "int8"), "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["inputs"][0]["dtype"] == "uint8"
    assert info["inputs"][0]["scale"] > 0
    assert info["metadata"]["labels"] == ["blue", "green", "red"]
    assert any(op["name"] == "CONV_2D" for op in info["operators"])
    result = run("info", artifact(artifacts, "onnx", "int8"))
    assert result.exit_code == 0
    assert "onnxruntime" in result.stdout and "int8" in result.stdout


def _png_bomb(path):
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _bad_image(tmp_path, kind, photo):
    path = tmp_path / f"{kind}.jpg"
    if kind == "missing":
        return path, f"error: {path}: no such file"
    if kind == "not-an-image":
        path.write_text("just text")
        return path, f"error: {path}: not an image Pillow can read"
    if kind == "truncated":
        data = photo.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        return path, f"error: {path}: truncated or corrupt image"
    if kind == "bomb":
        path = tmp_path / "bomb.png"
        _png_bomb(path)
        return path, f"error: {path}: over the 89,478,485 pixel limit (possible decompression bomb); resize it first"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "not-an-image", "truncated", "bomb"])
def test_bad_images_give_one_line_and_exit_1(artifacts, tmp_path, photo, kind):
    path, message = _bad_image(tmp_path, kind, photo)
    result = run("predict", artifact(artifacts, "tflite", "float32"), path)
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_bad_image_does_not_stop_the_good_ones(artifacts, tmp_path, photo):
    path, _ = _bad_image(tmp_path, "not-an-image", photo)
    result = run("predict", artifact(artifacts, "onnx", "float32"), photo, path, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert len(data["results"]) == 1 and data["results"][0]["image"] == str(photo)
    assert data["errors"] == [f"{path}: not an image Pillow can read"]


@pytest.mark.parametrize("mode, suffix, note", [
    ("CMYK", "tiff", "CMYK image converted to RGB"),
    ("RGBA", "png", "RGBA image, transparency composited over white"),
    ("L", "png", "grayscale image converted to RGB"),
    ("P", "png", "palette image converted to RGB"),
    ("I;16", "png", "16-bit grayscale scaled to 8-bit RGB"),
])
def test_unusual_image_modes_are_converted_with_a_note(artifacts, tmp_path, mode, suffix, note):
    path = tmp_path / f"odd.{suffix}"
    if mode == "I;16":
        Image.fromarray(np.full((40, 40), 40000, dtype=np.uint16)).save(path)
    else:
        Image.new("RGB", (40, 40), (200, 30, 30)).convert(mode).save(path)
    result = run("predict", artifact(artifacts, "tflite", "int8"), path)
    assert result.exit_code == 0, result.output
    assert f"note: {path.name}: {note}" in result.stderr


@pytest.mark.parametrize("content, suffix, message", [
    (b"garbage bytes, not a flatbuffer", "tflite", "not a valid .tflite file (the 'TFL3' file identifier is missing)"),
    (b"\x0a\xff\xff\xff\xff garbage", "onnx", "not a valid .onnx file"),
])
def test_garbage_models(tmp_path, photo, content, suffix, message):
    path = tmp_path / f"model.{suffix}"
    path.write_bytes(content)
    for command in (["predict", path, photo], ["info", path]):
        result = run(*command)
        assert result.exit_code == 1
        assert result.stderr.strip() == f"error: {path.name}: {message}" or result.stderr.startswith(
            f"error: {path.name}: {message}")
        assert "Traceback" not in result.output


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_truncated_models(artifacts, tmp_path, photo, fmt):
    data = artifact(artifacts, fmt, "float32").read_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[: len(data) - 1000])
    result = run("predict", path, photo)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cut.{fmt}: not a valid .{fmt} file")


def test_missing_model(tmp_path, photo):
    result = run("predict", tmp_path / "none.tflite", photo)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'none.tflite'}: no such file"


def test_convert_unknown_precision_is_an_error_and_writes_nothing(trained_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run("convert", trained_checkpoint, "--out", out, "--precision", "float32,int4")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: unknown precision 'int4'; expected some of "
                                     "float32, float16, dynamic, int8")
    assert not out.exists()


def test_convert_int8_without_calibration(trained_checkpoint, tmp_path):
    result = run("convert", trained_checkpoint, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: int8 needs real calibration images: pass --calibration DIR "
                                     "(or leave int8 out with --precision)")


def test_convert_checkpoint_that_is_not_a_model(tmp_path, color_data):
    fake = tmp_path / "model.keras"
    fake.write_text("not a model")
    result = run("convert", fake, "--out", tmp_path / "out", "--precision", "float32",
                 "--check", color_data / "validation")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: model.keras: not a Keras model edgelite can load")
    assert not (tmp_path / "out").exists()


def test_convert_end_to_end_json_and_strict(trained_checkpoint, color_data, tmp_path):
    out = tmp_path / "out"
    result = run("convert", trained_checkpoint, "--out", out, "--format", "tflite", "--precision", "float32,int8",
                 "--calibration", color_data / "train", "--check", color_data / "validation", "--strict", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [a["precision"] for a in data["artifacts"]] == ["float32", "int8"]
    assert data["warnings"] == ["only 120 calibration images (about 300 or more give steadier int8 ranges)"]
    assert "warning: only 120 calibration images" in result.stderr


def test_usage_errors_exit_2(tmp_path):
    result = run("predict")
    assert result.exit_code == 2
    result = run("convert", tmp_path / "x.keras", "--out", tmp_path, "--int8-io", "int16")
    assert result.exit_code == 2
