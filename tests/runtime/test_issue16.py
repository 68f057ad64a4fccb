"""Issue 16 on the runtime: no silent wrong answers, read only what is needed, one bad item at a time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.errors import ImageError, ModelFileError, OptionError
from edgelite.isolated import PACKAGE_ROOT
from edgelite.runtime import load
from edgelite.runtime.metadata import CHECKPOINT_METADATA, METADATA_KEY, MAX_METADATA_MEMBER_BYTES
from edgelite.runtime.tflite_format import read_tflite
from tests.conftest import artifact
from tests.runtime.test_untrusted import _edited, _onnx_with_metadata, _tflite_with_metadata


# -- metadata the graph contradicts -------------------------------------------------------------
def _document(path: Path) -> dict:
    return json.loads(read_tflite(path.read_bytes()).metadata[METADATA_KEY])


def test_rescale_on_a_graph_that_already_scales_is_refused(artifacts, tmp_path):
    source = artifact(artifacts, "tflite", "int8")
    document = _document(source)
    assert document["graph_scaling"] != "none"  # edgelite's artifacts scale inside the graph
    path = _tflite_with_metadata(source, _edited(document, input_scaling="rescale"), tmp_path / "twice.tflite")
    with pytest.raises(ModelFileError, match="input_scaling is rescale, but the graph already scales its input"):
        load(path)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_logits_on_a_graph_that_ends_in_softmax_is_refused(artifacts, tmp_path, precision):
    source = artifact(artifacts, "tflite", precision)
    path = _tflite_with_metadata(source, _edited(_document(source), output_kind="logits"), tmp_path / "l.tflite")
    with pytest.raises(ModelFileError, match="says output_kind logits, but the graph ends in SOFTMAX"):
        load(path)


def test_logits_on_an_onnx_softmax_output_is_refused(artifacts, tmp_path):
    import onnx

    source = artifact(artifacts, "onnx", "float32")
    document = json.loads(next(p.value for p in onnx.load(str(source)).metadata_props if p.key == METADATA_KEY))
    path = _onnx_with_metadata(source, _edited(document, output_kind="logits"), tmp_path / "l.onnx")
    with pytest.raises(ModelFileError, match="already a probability distribution"):
        load(path)


# -- manifest.json ----------------------------------------------------------------------------------
@pytest.fixture()
def converted(artifacts, tmp_path) -> Path:
    """A copy of the convert output folder: artifacts and their manifest.json."""
    folder = tmp_path / "out"
    shutil.copytree(artifact(artifacts, "tflite", "int8").parent, folder)
    assert (folder / "manifest.json").is_file()
    return folder


@pytest.mark.parametrize("fmt, precision", [("tflite", "int8"), ("onnx", "float32")])
def test_a_file_changed_after_convert_is_refused_naming_both_digests(artifacts, converted, fmt, precision):
    path = converted / artifact(artifacts, fmt, precision).name
    recorded = next(a for a in json.loads((converted / "manifest.json").read_text())["artifacts"]
                    if a["file"] == path.name)
    assert load(path).manifest.sha256 == recorded["sha256"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as raised:
        load(path)
    import hashlib

    message = str(raised.value)
    assert recorded["sha256"] in message and hashlib.sha256(bytes(data)).hexdigest() in message
    assert "differs from what manifest.json records" in message


def test_info_shows_the_manifest_check(artifacts, converted):
    path = converted / artifact(artifacts, "tflite", "int8").name
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "match manifest.json" in result.stdout
    data = json.loads(CliRunner().invoke(cli, ["info", str(path), "--json"]).stdout)
    assert data["manifest"]["verified"] is True
    alone = artifact(artifacts, "tflite", "int8")
    (converted / "manifest.json").unlink()
    assert "none lists this file" in CliRunner().invoke(cli, ["info", str(path)]).stdout
    assert alone.is_file()


# -- read only what is needed ---------------------------------------------------------------------
def _io_bytes_read() -> int:
    return int(next(line for line in Path("/proc/self/io").read_text().splitlines()
                    if line.startswith("rchar:")).split()[1])


@pytest.mark.parametrize("head", [b"\x00" * 8, b"\x1c\x00\x00\x00TFL3"], ids=["garbage", "a TFL3 header"])
def test_a_3_gib_file_is_refused_from_its_header_and_size(tmp_path, head):
    path = tmp_path / "huge.tflite"
    with open(path, "wb") as handle:  # sparse: 3 GiB on paper, nothing on disk
        handle.write(head)
        handle.truncate(3 << 30)
    before = _io_bytes_read()
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="huge.tflite: not a valid .tflite file"):
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _io_bytes_read() - before < 1 << 20
    assert peak < 1 << 20


@pytest.fixture(scope="module")
def metadata_bomb(tmp_path_factory) -> Path:
    """A small .keras zip whose edgelite.json unpacks to 1.5 GB (zeros compress about 1000:1)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.keras"
    block = b" " * (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("metadata.json", "{}")
        with archive.open(CHECKPOINT_METADATA, "w", force_zip64=True) as member:
            for _ in range(1536):
                member.write(block)
    assert path.stat().st_size < 10 << 20
    return path


def _refused_with_little_memory(call) -> str:
    tracemalloc.start()
    try:
        with pytest.raises((ModelFileError, OptionError)) as raised:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
    return str(raised.value)


def test_a_keras_metadata_bomb_is_refused_before_unpacking_in_convert_evaluate_and_init_from(metadata_bomb):
    pytest.importorskip("tensorflow")
    from edgelite.convert.source import load_checkpoint
    from edgelite.train.init_from import read_init_source

    expected = (f"bomb.keras: its member {CHECKPOINT_METADATA} unpacks to {1536 << 20:,} bytes; metadata members "
                f"are at most {MAX_METADATA_MEMBER_BYTES >> 20} MB")
    assert expected in _refused_with_little_memory(lambda: load_checkpoint(metadata_bomb))  # convert, evaluate
    assert expected in _refused_with_little_memory(lambda: read_init_source(metadata_bomb, "scratch"))


# -- one bad item at a time, and the runtime's smaller points -------------------------------------
def test_a_failing_source_keeps_the_results_read_before_it(artifacts, color_data):
    model = load(artifact(artifacts, "tflite", "int8"))
    photos = sorted((color_data / "validation").rglob("*.jpg"))[:20]

    def sources():
        yield from photos
        raise RuntimeError("the camera went away")

    results = []
    with pytest.raises(RuntimeError, match="the camera went away"):
        for result in model.predict_iter(sources(), batch_size=8):
            results.append(result)
    assert [r.source for r in results] == [str(p) for p in photos]
    assert all(r.ok for r in results)


def test_permission_denied_is_said_as_such(photo):
    photo.chmod(0)
    code = ("import sys\nfrom edgelite.runtime.preprocess import preprocess\nfrom edgelite.errors import ImageError\n"
            f"try:\n    preprocess({str(photo)!r}, 8, 8)\nexcept ImageError as exc:\n    print(exc)\n")
    # root reads any file: drop the capabilities that let it, as an ordinary user has none
    prefix = (["setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else [])
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot be denied a file")
    done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=PACKAGE_ROOT))
    assert done.stdout.strip() == f"{photo}: permission denied; cannot read the image", done.stderr


def test_an_empty_batch_is_a_clear_error_that_does_not_blame_the_model(artifacts):
    model = load(artifact(artifacts, "tflite", "int8"))
    with pytest.raises(OptionError, match=r"expected at least one image, got an empty batch of shape \(0, "):
        model.run(np.zeros((0, model.height, model.width, 3), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fmt, precision", [("tflite", "int8"), ("onnx", "int8"), ("tflite", "float32")])
def test_nan_or_infinite_pixels_are_refused(artifacts, fmt, precision, bad):
    model = load(artifact(artifacts, fmt, precision))
    pixels = np.full((1, model.height, model.width, 3), 128, np.float32)
    pixels[0, 3, 3, 1] = bad
    with pytest.raises(ImageError, match="the pixels hold NaN or infinite values; expected raw 0-255 RGB"):
        model.run(pixels)
