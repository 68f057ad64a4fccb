import os
from pathlib import Path

import pytest

from edgelite.atomic import atomic_path, report_target, write_bytes_atomic, write_report_bytes
from edgelite.errors import OptionError


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


def test_temp_files_carry_our_prefix_and_the_signal_handlers_come_back(tmp_path):
    import signal

    before = {n: signal.getsignal(n) for n in (signal.SIGTERM, signal.SIGHUP)}
    with atomic_path(tmp_path / "model.tflite") as temp:
        assert temp.name.startswith(".edgelite-model.tflite.") and temp.name.endswith(".tmp")
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]  # ours while the temp file lives
        temp.write_bytes(b"x")
    assert {n: signal.getsignal(n) for n in before} == before


@pytest.mark.parametrize("make, through, descriptor", [
    (lambda tmp: tmp / "new.json", False, None),
    (lambda tmp: (tmp / "old.json").write_text("old") and tmp / "old.json", False, None),
    (lambda tmp: os.mkfifo(tmp / "fifo") or tmp / "fifo", True, None),
    (lambda tmp: Path("/dev/stdout"), True, 1),
    (lambda tmp: Path("/proc/self/fd/2"), True, 2),
])
def test_report_targets_by_kind(tmp_path, make, through, descriptor):
    target = report_target(make(tmp_path))
    assert (target.through, target.descriptor) == (through, descriptor)


def test_a_report_symlink_is_followed_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "real" / "report.csv")  # dangling: the report makes its target
    write_report_bytes(link, b"a,b\n")
    assert link.is_symlink() and (tmp_path / "real" / "report.csv").read_bytes() == b"a,b\n"


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp, "output {tmp} is a folder; expected a file (replaced whole), a FIFO or a character device"),
    (lambda tmp: tmp / "no" / "r.json", "output {tmp}/no/r.json: the folder {tmp}/no does not exist"),
])
def test_paths_no_report_can_go_to(tmp_path, make, message):
    with pytest.raises(OptionError) as raised:
        report_target(make(tmp_path))
    assert str(raised.value) == message.format(tmp=tmp_path)


def test_a_symlink_loop_is_an_option_error(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OptionError, match="too many levels of symbolic links"):
        report_target(tmp_path / "a", "--out")
