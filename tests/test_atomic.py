import os

import pytest

from edgelite.atomic import atomic_path, write_bytes_atomic


def test_write_replaces_the_whole_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.json"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not left at mkstemp's private mode


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"complete old model")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            temp.write_bytes(b"half of a new mod")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"complete old model"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_a_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "new.onnx") as temp:
            temp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
