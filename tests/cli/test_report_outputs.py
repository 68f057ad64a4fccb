"""Report outputs never destroy what they point at: real `edgelite` processes on a tiny ONNX model.

predict --out, evaluate --plot and bench --json/--csv/--plot follow one rule:
the model or an input is refused before any work, a regular file or a new path
is replaced atomically, a symlink is followed, a FIFO or a character device is
written through, and the temp file goes away on SIGTERM and SIGHUP.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.bench.test_evaluate import LABELS, channel_model  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def model(channel_model, tmp_path) -> Path:
    """A per-test copy of evaluate's crafted ONNX model (no TensorFlow): a test that damages it damages its own."""
    folder = tmp_path / "model"
    folder.mkdir()
    return Path(shutil.copy(channel_model, folder / channel_model.name))


@pytest.fixture()
def data(tmp_path) -> Path:
    """data/<class>/<n>.png, two plain-colour photos per class."""
    root = tmp_path / "data"
    for name, colour in zip(LABELS, [(200, 10, 10), (10, 200, 10), (10, 10, 200)]):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), colour).save(root / name / f"{i}.png")
    return root


def edgelite(*args, stdin=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgelite", *map(str, args)], capture_output=True, text=True,
                          input=stdin, cwd=ROOT, timeout=300, env=_env(), **kwargs)


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".edgelite-") or p.suffix == ".tmp")


# -- the model or an input is refused before any work ---------------------------------------------
@pytest.mark.parametrize("command", [
    ["predict", "{model}", "{data}/red/0.png", "--out", "{model}"],
    ["evaluate", "{model}", "{data}", "--plot", "{model}"],
    ["bench", "{model}", "--runs", "1", "--json", "{model}"],
    ["bench", "{model}", "--runs", "1", "--csv", "{link}"],
])
def test_the_model_is_never_a_report(model, data, tmp_path, command):
    link = tmp_path / "model-link.onnx"
    link.symlink_to(model)
    before = model.read_bytes()
    args = [a.format(model=model, data=data, link=link) for a in command]
    result = edgelite(*args)
    assert result.returncode == 1
    option, path = args[-2], args[-1]
    shown = "" if path == str(model) else f" ({model})"
    assert result.stderr == (f"error: {option} {path} is the model{shown}; writing the report there would destroy "
                             "it: choose another path\n")
    assert model.read_bytes() == before
    assert _temps(model.parent) == []


@pytest.mark.parametrize("how", ["the file", "a photo in an input folder", "a hard link", "a path read from stdin"])
def test_an_input_photo_is_never_a_report(model, data, tmp_path, how):
    photo = data / "red" / "0.png"
    before = photo.read_bytes()
    out, stdin = photo, None
    if how == "the file":
        inputs = [photo, data / "green" / "0.png"]
    elif how == "a photo in an input folder":
        inputs = [data]
    elif how == "a hard link":
        out = tmp_path / "results.csv"
        os.link(photo, out)
        inputs = [photo]
    else:
        inputs, stdin = ["-"], f"{data / 'green' / '0.png'}\n{photo}\n"
    result = edgelite("predict", model, *inputs, "--out", out, stdin=stdin)
    assert result.returncode == 1
    shown = f" ({photo})" if how == "a hard link" else ""
    assert result.stderr.splitlines()[-1] == (f"error: --out {out} is an input{shown}; writing the report there "
                                              "would destroy it: choose another path")
    assert photo.read_bytes() == before and stat.S_ISREG(photo.lstat().st_mode)
    assert _temps(photo.parent) == []


def test_an_evaluate_plot_over_an_input_photo_is_refused(model, data):
    photo = data / "blue" / "1.png"
    before = photo.read_bytes()
    result = edgelite("evaluate", model, data, "--plot", photo)
    assert result.returncode == 1
    assert result.stderr == (f"error: --plot {photo} is an input; writing the report there would destroy it: "
                             "choose another path\n")
    assert photo.read_bytes() == before


@pytest.mark.parametrize("make, message", [
    (lambda tmp: (tmp / "folder").mkdir() or tmp / "folder",
     "--json {tmp}/folder is a folder; expected a file (replaced whole), a FIFO or a character device"),
    (lambda tmp: tmp / "missing" / "bench.json", "--json {tmp}/missing/bench.json: the folder {tmp}/missing does "
                                                 "not exist"),
])
def test_a_path_no_report_can_go_to_is_refused_before_any_work(model, tmp_path, make, message):
    result = edgelite("bench", model, "--runs", "1", "--json", make(tmp_path))
    assert result.returncode == 1
    assert result.stderr == f"error: {message.format(tmp=tmp_path)}\n"
    assert "load average" not in result.stdout  # no row was measured


# -- what each kind of path becomes -------------------------------------------------------------------
def test_a_regular_file_is_replaced_and_a_symlink_is_followed(model, data, tmp_path):
    target = tmp_path / "kept" / "results.jsonl"
    target.parent.mkdir()
    target.write_text("old results\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    result = edgelite("predict", model, data, "--out", link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == 6 and records[0]["predictions"][0]["label"] == "blue"
    assert _temps(tmp_path) == [] and _temps(target.parent) == []
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_a_fifo_is_written_through_and_stays_a_fifo(model, data, tmp_path):
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    result = edgelite("predict", model, data, "--jsonl", "--out", fifo)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert len([json.loads(line) for line in received[0].splitlines()]) == 6
    assert _temps(tmp_path) == []


def test_a_bench_plot_into_a_fifo_is_written_through(model, tmp_path):
    fifo = tmp_path / "bench.png"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = edgelite("bench", model, "--runs", "2", "--warmup", "0", "--plot", fifo)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and received[0].startswith(b"\x89PNG")


def _char_device(tmp_path: Path) -> Path:
    """A null device of our own as root (the system's /dev/null is never put at risk), else /dev/null."""
    if os.geteuid() != 0:
        return Path("/dev/null")  # an unprivileged user cannot rename over it, whatever the code does
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"cannot make a character device here: {exc}")
    return device


def test_a_character_device_stays_a_character_device(model, data, tmp_path):
    device = _char_device(tmp_path)
    before = device.stat()
    result = edgelite("predict", model, data, "--csv", "--out", device)
    assert result.returncode == 0, result.stderr
    after = device.lstat()
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert _temps(device.parent) == [] if device.parent != Path("/dev") else True


def test_dev_stdout_writes_into_the_file_the_shell_opened(model, data, tmp_path):
    shell_file = tmp_path / "shell.jsonl"
    with open(shell_file, "w") as stdout:
        inode = os.fstat(stdout.fileno()).st_ino
        result = subprocess.run([sys.executable, "-m", "edgelite", "predict", str(model), str(data), "--jsonl",
                                 "--out", "/dev/stdout"], stdout=stdout, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert shell_file.stat().st_ino == inode  # the same file, not one renamed over it
    assert len(shell_file.read_text().splitlines()) == 6
    assert _temps(tmp_path) == []


# -- signals --------------------------------------------------------------------------------------------
def _default_hangup() -> None:
    """SIGHUP's default action in the child, even when the suite runs under `nohup` (which ignores it)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_the_write_leaves_the_old_report_and_no_temp_file(model, data, tmp_path, number):
    out = tmp_path / "results.jsonl"
    out.write_text("the previous results\n")
    process = subprocess.Popen([sys.executable, "-m", "edgelite", "predict", str(model), "-", "--jsonl", "--out",
                                str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT, env=_env(), preexec_fn=_default_hangup)
    try:
        process.stdin.write(f"{data / 'red' / '0.png'}\n")
        process.stdin.flush()  # stdin stays open: predict is mid-report, writing into its temp file
        deadline = time.monotonic() + 120
        while not _temps(tmp_path):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the report's temp file never got the first result"
            time.sleep(0.05)
    finally:
        process.send_signal(number)
        process.communicate(timeout=60)
    assert process.returncode in (-number, 130, 128 + number)
    assert out.read_text() == "the previous results\n"
    assert _temps(tmp_path) == []


def test_help_says_reports_are_replaced():
    for command in (["predict"], ["evaluate"], ["bench"]):
        result = edgelite(*command, "--help")
        assert "replaced whole" in " ".join(result.stdout.split()), command
