"""`edgelite predict` as a process in a pipeline: stdin of paths or of an image, bounded lines, `| head`."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgelite.isolated import PACKAGE_ROOT
from edgelite.runtime.stdin import MAX_LINE_BYTES
from tests.conftest import COLORS, artifact, make_image

# The CLI by file, reporting its peak RSS (KiB) on stderr at exit.
LAUNCHER = ("import atexit, resource, sys\n"
            "atexit.register(lambda: print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
            " file=sys.stderr))\n"
            "from edgelite.cli import main\nmain()\n")


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("launcher") / "edgelite_cli.py"
    path.write_text(LAUNCHER)
    return path


def command(launcher: Path, *args) -> list[str]:
    return [sys.executable, str(launcher), *map(str, args)]


ENV = dict(os.environ, PYTHONPATH=PACKAGE_ROOT, TF_CPP_MIN_LOG_LEVEL="3")


def run(launcher, *args, stdin=b""):
    return subprocess.run(command(launcher, *args), input=stdin, capture_output=True, env=ENV, timeout=120)


def max_rss(stderr: bytes) -> int:
    return int(next(line for line in stderr.decode().splitlines() if line.startswith("maxrss")).split()[1])


@pytest.fixture()
def photos(color_data) -> list[Path]:
    return sorted((color_data / "validation" / "red").glob("*.jpg"))[:3]


def test_bad_stdin_lines_are_one_error_each_and_the_others_are_answered(artifacts, launcher, photos):
    too_long_path = "/" + "a" * 5000 + ".jpg"  # a path past NAME_MAX / PATH_MAX: the OS refuses to open it
    lines = [str(photos[0]).encode(), too_long_path.encode(), b"\xff\xfe caf\xe9.jpg",
             b"x" * (MAX_LINE_BYTES + 10), str(photos[1]).encode()]
    done = run(launcher, "predict", artifact(artifacts, "tflite", "int8"), "-", "--jsonl",
               stdin=b"\n".join(lines) + b"\n")
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["image"] for r in records] == [str(photos[0]), too_long_path, "stdin line 3", "stdin line 4",
                                             str(photos[1])]
    assert "predictions" in records[0] and "predictions" in records[4]
    assert records[1]["error"].endswith("cannot open it (File name too long)")
    assert records[2]["error"] == "stdin line 3: not UTF-8 text; expected one image path per line"
    assert records[3]["error"] == (f"stdin line 4: longer than {MAX_LINE_BYTES:,} bytes; "
                                   "expected one image path per line")
    stderr = done.stderr.decode()
    assert "unexpected" not in stderr and "Traceback" not in stderr
    assert "error: 3 of 5 images could not be read" in stderr


def test_dev_zero_as_stdin_is_one_error_and_memory_stays_bounded(artifacts, launcher):
    model = artifact(artifacts, "tflite", "int8")
    baseline = run(launcher, "predict", model, "-", stdin=b"missing.jpg\n")
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run(command(launcher, "predict", model, "-", "--jsonl"), stdin=zero,
                              capture_output=True, env=ENV, timeout=120)
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert records == [{"image": "stdin line 1", "error": "stdin line 1: no line end in the first 1 MB; stdin is "
                        "not a list of image paths (the rest of it was not read)"}]
    assert max_rss(done.stderr) < max_rss(baseline.stderr) + 32 * 1024


@pytest.mark.parametrize("fmt, save_as", [("JPEG", "JPEG"), ("PNG", "PNG"), ("GIF", "GIF"), ("BMP", "BMP"),
                                          ("WEBP", "WEBP"), ("TIFF", "TIFF")])
def test_an_image_piped_into_stdin_is_classified(artifacts, launcher, fmt, save_as):
    buffer = io.BytesIO()
    make_image(COLORS["red"], np.random.default_rng(3)).save(buffer, save_as)
    done = run(launcher, "predict", artifact(artifacts, "onnx", "float32"), "-", "--jsonl",
               stdin=buffer.getvalue())
    assert done.returncode == 0, done.stderr.decode()
    [record] = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert record["image"] == "image bytes"
    assert record["predictions"][0]["label"] == "red"


def test_paths_that_start_like_a_bitmap_are_still_paths(artifacts, launcher, photos, tmp_path):
    named = tmp_path / "BM_photos"
    named.mkdir()
    shutil.copy(photos[0], named / "red.jpg")
    done = subprocess.run(command(launcher, "predict", artifact(artifacts, "onnx", "float32"), "-", "--jsonl"),
                          input=b"BM_photos/red.jpg\n", capture_output=True, env=ENV, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["image"] == "BM_photos/red.jpg"


@pytest.mark.parametrize("fmt, lines_before_close", [("--csv", 2), ("--jsonl", 1), ("--json", 0), (None, 3)])
def test_a_reader_that_goes_away_ends_the_command_quietly(artifacts, launcher, photos, fmt, lines_before_close):
    """`| head`: the reader closes the pipe while results still come; the rest is not an error."""
    args = ["predict", artifact(artifacts, "tflite", "int8"), "-", "--batch-size", "1"] + ([fmt] if fmt else [])
    process = subprocess.Popen(command(launcher, *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=ENV)
    process.stdin.write("".join(f"{p}\n" for p in photos).encode())  # past the read-ahead of 2 at batch 1
    process.stdin.flush()
    for _ in range(lines_before_close):
        assert process.stdout.readline()
    process.stdout.close()
    try:
        process.stdin.write("".join(f"{photos[i % 3]}\n" for i in range(200)).encode())
        process.stdin.close()
    except BrokenPipeError:  # it may already have ended: that is the point
        pass
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) in (0, 141), stderr
    assert [line for line in stderr.splitlines() if not line.startswith("maxrss")] == []
