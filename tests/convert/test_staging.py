"""Convert touches only what it wrote: interrupted runs, stale staging folders, no silent overwrite."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import edgelite.convert as convert_module
from edgelite.cli import cli
from edgelite.cli.common import interrupt_on_terminate
from edgelite.convert import STAGING_PREFIX, ConvertOptions, convert
from edgelite.convert.staging import MARKER, remove_stale
from edgelite.errors import DatasetError, ModelFileError, OptionError, OutputExistsError
from edgelite.runtime import load


def _options(color_data, **changes) -> ConvertOptions:
    values = dict(formats=("tflite",), precisions=("float32",), check=color_data / "validation", max_check_images=9)
    return ConvertOptions(**{**values, **changes})


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob(".edgelite-*"))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if convert gets as far as loading the checkpoint."""
    def refuse(*args, **kwargs):
        raise AssertionError("convert started working")

    monkeypatch.setattr(convert_module, "load_checkpoint", refuse)


# -- Ctrl-C --------------------------------------------------------------------------------
@pytest.mark.parametrize("case, out_exists, someone_writes, out_left", [
    ("new folder, a file written into it mid-run", False, True, True),
    ("new folder, nothing else in it", False, False, False),
    ("existing folder with a file, another written mid-run", True, True, True),
])
def test_ctrl_c_removes_only_what_this_run_created(trained_checkpoint, color_data, tmp_path, case, out_exists,
                                                   someone_writes, out_left):
    out = tmp_path / "nested" / "out"
    if out_exists:
        out.mkdir(parents=True)
        (out / "before.txt").write_text("was here")

    def progress(description, done, total):
        if description.startswith("checking"):  # the artifact is written in the staging folder
            assert _leftovers(out)
            if someone_writes:
                (out / "during.txt").write_text("mine")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(trained_checkpoint, out, _options(color_data), progress)
    assert out.exists() == out_left
    assert (tmp_path / "nested").exists() == out_left
    if out_left:
        expected = {"before.txt"} if out_exists else set()
        assert {p.name for p in out.iterdir()} == expected | ({"during.txt"} if someone_writes else set())
        assert _leftovers(out) == []


def test_ctrl_c_while_moving_removes_the_artifacts_already_moved(trained_checkpoint, color_data, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    calls = []
    real = convert_module.sha256_of

    def interrupted_second_time(path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(convert_module, "sha256_of", interrupted_second_time)
    with pytest.raises(KeyboardInterrupt):
        convert(trained_checkpoint, out, _options(color_data, precisions=("float32", "float16")))
    assert len(calls) == 2 and calls[0].parent == out  # the first artifact had been moved into out
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_ctrl_c_inside_an_exporter_leaves_no_temp_folder(trained_checkpoint, color_data, tmp_path, monkeypatch):
    import tempfile

    import edgelite.convert.onnx as onnx_module

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_module, "_quantize_static", interrupt)
    options = _options(color_data, formats=("onnx",), precisions=("int8",), calibration=color_data / "validation")
    with pytest.raises(KeyboardInterrupt):
        convert(trained_checkpoint, tmp_path / "out", options)
    assert list(temp.iterdir()) == []
    assert not (tmp_path / "out").exists()


def test_sigterm_and_sighup_interrupt_like_ctrl_c():
    for number in (signal.SIGTERM, signal.SIGHUP):
        inherited = signal.signal(number, signal.SIG_DFL)  # the default action, even when the suite runs under nohup
        try:
            with pytest.raises(KeyboardInterrupt):
                with interrupt_on_terminate():
                    os.kill(os.getpid(), number)
                    time.sleep(5)  # the signal arrives first; this only keeps the block open for it
            assert signal.getsignal(number) == signal.SIG_DFL
        finally:
            signal.signal(number, inherited)


def test_an_interrupt_a_library_swallowed_is_raised_at_the_next_step():
    calls = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt_on_terminate() as interrupts:
            progress = interrupts.guard(lambda *args: calls.append(args))
            progress("writing", 0, 2)
            try:  # a finalizer or a bare `except` in a library: the KeyboardInterrupt goes nowhere
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except KeyboardInterrupt:
                pass
            progress("checking", 1, 2)  # the next step stops the run instead of going on
    assert calls == [("writing", 0, 2)]


# -- stale staging is judged by a lock -------------------------------------------------------------
def _staging_folder(out: Path, name: str, marker: bool) -> Path:
    folder = out / f"{STAGING_PREFIX}{name}"
    folder.mkdir(parents=True)
    (folder / "partial.tflite").write_bytes(b"half")
    if marker:
        (folder / MARKER).write_text("staging folder of edgelite convert\n")
    return folder


def test_only_unlocked_folders_with_our_marker_are_removed(tmp_path):
    out = tmp_path / "out"
    host = socket.gethostname()
    # A live run in another PID namespace on a host of the same name: its pid means nothing here, its lock is held.
    live = _staging_folder(out, f"{host}-{_dead_pid()}-1badcafe", marker=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1]); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
                               str(live / MARKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        users = _staging_folder(out, f"{host}-{_dead_pid()}-2badcafe", marker=False)  # matches the name, not ours
        stale = _staging_folder(out, f"{host}-{_dead_pid()}-0badcafe", marker=True)
        notes = remove_stale(out)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert live.exists() and (live / "partial.tflite").exists()
    assert users.exists() and (users / "partial.tflite").exists()
    assert not stale.exists()
    assert notes == [f"removed {stale.name} from {out}: the staging folder of an interrupted convert (its lock "
                     "was free)"]
    assert remove_stale(out) == [f"removed {live.name} from {out}: the staging folder of an interrupted convert "
                                 "(its lock was free)"]  # its run is over now
    assert users.exists()


def test_a_running_convert_holds_its_staging_lock(trained_checkpoint, color_data, tmp_path):
    out = tmp_path / "out"
    seen = []

    def progress(description, done, total):
        if description.startswith("checking"):
            before = _leftovers(out)
            seen.append((before, [(out / n / MARKER).is_file() for n in before], remove_stale(out), _leftovers(out)))

    convert(trained_checkpoint, out, _options(color_data), progress)
    (before, marked, notes, after), = seen
    assert len(before) == 1 and marked == [True]
    assert notes == [] and after == before  # locked: not removed, even from this very process
    assert _leftovers(out) == []


# -- kill -9 ---------------------------------------------------------------------------------
def _convert_until_staging(trained_checkpoint, color_data, out: Path, temp: Path, number: int):
    """Start `edgelite convert` in a child process and send it `number` once its staging folder exists."""
    command = [sys.executable, "-m", "edgelite", "convert", str(trained_checkpoint), "--out", str(out),
               "--format", "tflite", "--precision", "float32,float16,dynamic", "--check",
               str(color_data / "validation")]
    temp.mkdir()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2], env=dict(os.environ, TMPDIR=str(temp)))
    try:
        deadline = time.monotonic() + 300
        while not (out.exists() and any(n.startswith(STAGING_PREFIX) for n in _leftovers(out))):
            assert process.poll() is None, "convert ended before the signal"
            assert time.monotonic() < deadline, "no staging folder appeared"
            time.sleep(0.02)
    finally:
        process.send_signal(number)
        _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def test_kill_9_during_convert_then_a_rerun_leaves_no_staging(trained_checkpoint, color_data, tmp_path):
    out = tmp_path / "out"
    code, _ = _convert_until_staging(trained_checkpoint, color_data, out, tmp_path / "tmp", signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = _leftovers(out)
    assert len(left) == 1 and left[0].startswith(STAGING_PREFIX)  # no cleanup could run
    report = convert(trained_checkpoint, out, _options(color_data))
    assert _leftovers(out) == []
    assert any(n.startswith(f"removed {left[0]} from {out}") for n in report.notes)
    assert load(report.artifacts[0].path).predict(next((color_data / "validation" / "red").iterdir()))


def test_sigterm_during_convert_cleans_up_like_ctrl_c(trained_checkpoint, color_data, tmp_path):
    for attempt in range(3):  # a run that finished its work before the signal landed (exit 0) says nothing: again
        out, temp = tmp_path / f"out{attempt}", tmp_path / f"tmp{attempt}"
        code, stderr = _convert_until_staging(trained_checkpoint, color_data, out, temp, signal.SIGTERM)
        if code != 0:
            break
    # Not killed by the signal: interrupted (130), or, when it lands inside TensorFlow's converter, which
    # then fails in its own way, a conversion error (1). Either way the cleanup ran.
    assert code in (130, 1), stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "error: interrupted" or code == 1
    assert not out.exists()  # a new folder, with nothing of anyone else's in it
    assert list(temp.iterdir()) == []  # the converter's temp folders too


# -- no silent overwrite -----------------------------------------------------------------------
@pytest.mark.parametrize("existing", ["{stem}_float32.tflite", "manifest.json"])
def test_an_existing_output_is_refused_before_any_work(trained_checkpoint, color_data, tmp_path, no_work,
                                                       existing):
    out = tmp_path / "out"
    out.mkdir()
    target = out / existing.format(stem=trained_checkpoint.stem)
    target.write_text("someone's file")
    with pytest.raises(OutputExistsError) as raised:
        convert(trained_checkpoint, out, _options(color_data))
    assert str(raised.value) == f"{target} already exists; pass --force to replace it, or choose another --out"
    result = CliRunner().invoke(cli, ["convert", str(trained_checkpoint), "--out", str(out), "--format", "tflite",
                                      "--precision", "float32", "--check", str(color_data / "validation")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {raised.value}\n"
    assert target.read_text() == "someone's file"


def test_force_replaces_what_is_there(trained_checkpoint, color_data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"{trained_checkpoint.stem}_float32.tflite"
    target.write_text("an older artifact")
    (out / "manifest.json").write_text("{}")
    report = convert(trained_checkpoint, out, _options(color_data, force=True))
    assert report.artifacts[0].path == target
    assert load(target).labels == ("blue", "green", "red")
    assert "artifacts" in (out / "manifest.json").read_text()


def _previous_build(out: Path, stem: str) -> dict[str, str]:
    """An earlier build's float32 and float16 artifacts and manifest, as {name: content}."""
    out.mkdir(parents=True)
    files = {f"{stem}_float32.tflite": "old float32", f"{stem}_float16.tflite": "old float16",
             "manifest.json": '{"old": true}'}
    for name, content in files.items():
        (out / name).write_text(content)
    return files


def test_a_failed_force_puts_the_previous_build_back(trained_checkpoint, color_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    previous = _previous_build(out, trained_checkpoint.stem)
    calls = []
    real = convert_module.sha256_of

    def fails_second_time(path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path)

    monkeypatch.setattr(convert_module, "sha256_of", fails_second_time)
    with pytest.raises(OSError, match="No space left on device"):
        convert(trained_checkpoint, out, _options(color_data, precisions=("float32", "float16"), force=True))
    assert calls[0].parent == out  # the first new artifact had replaced the old one when the failure came
    assert {p.name: p.read_text() for p in out.iterdir()} == previous
    assert _leftovers(out) == []


def test_a_folder_put_in_place_of_an_artifact_mid_run_keeps_the_previous_build(trained_checkpoint, color_data,
                                                                                 tmp_path):
    out = tmp_path / "out"
    previous = _previous_build(out, trained_checkpoint.stem)
    (out / "manifest.json").unlink()
    del previous["manifest.json"]

    def progress(description, done, total):
        if description == "done":  # every artifact is written in the staging folder; none moved yet
            (out / "manifest.json").mkdir()

    with pytest.raises(OptionError) as raised:
        convert(trained_checkpoint, out, _options(color_data, precisions=("float32", "float16"), force=True),
                progress)
    assert str(raised.value) == (f"{out / 'manifest.json'} is a folder; convert replaces only files: move it "
                                 "away, or choose another --out")
    assert {p.name: p.read_text() for p in out.iterdir() if p.is_file()} == previous
    assert (out / "manifest.json").is_dir()
    assert _leftovers(out) == []


def test_force_refuses_an_entry_that_is_a_folder_before_any_work(trained_checkpoint, color_data, tmp_path,
                                                                  no_work):
    out = tmp_path / "out"
    (out / "manifest.json").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["convert", str(trained_checkpoint), "--out", str(out), "--format", "tflite",
                                      "--precision", "float32", "--check", str(color_data / "validation"),
                                      "--force"])
    assert result.exit_code == 1
    assert result.stderr == (f"error: {out / 'manifest.json'} is a folder; convert replaces only files: move it "
                             "away, or choose another --out\n")
    assert (out / "manifest.json").is_dir() and _leftovers(out) == []


def test_force_is_documented_in_help():
    result = CliRunner().invoke(cli, ["convert", "--help"])
    assert "--force" in result.output and "never replaced silently" in result.output


@pytest.mark.parametrize("make, message", [
    (lambda tmp: (tmp / "out").write_text("a file"), "--out {tmp}/out is a file; expected a folder (new or existing)"),
    (lambda tmp: (tmp / "parent").write_text("a file"),
     "--out {tmp}/parent/out: {tmp}/parent is a file, so no folder can be made under it"),
])
def test_an_out_that_cannot_be_a_folder_is_refused_before_any_work(trained_checkpoint, color_data, tmp_path,
                                                                    no_work, make, message):
    make(tmp_path)
    out = tmp_path / "out" if (tmp_path / "out").exists() else tmp_path / "parent" / "out"
    with pytest.raises(OptionError) as raised:
        convert(trained_checkpoint, out, _options(color_data))
    assert str(raised.value) == message.format(tmp=tmp_path)


# -- smaller holes -------------------------------------------------------------------------------
def _images_with_a_bad_one(color_data, tmp_path, bad: int = 1) -> Path:
    folder = tmp_path / "calibration"
    for name in ("red", "green", "blue"):
        (folder / name).mkdir(parents=True)
        for path in sorted((color_data / "train" / name).iterdir())[:4]:
            shutil.copy(path, folder / name / path.name)
    for i in range(bad):
        (folder / "red" / f"broken_{i}.jpg").write_bytes(b"not a jpeg")
    return folder


@pytest.mark.parametrize("check_same, warnings", [
    (False, ["skipped 1 unreadable calibration image of 13 (first: {folder}/red/broken_0.jpg: "
             "not an image Pillow can read)",
             "only 12 calibration images (about 300 or more give steadier int8 ranges)"]),
    (True, ["skipped 1 unreadable calibration image of 13 (first: {folder}/red/broken_0.jpg: "
            "not an image Pillow can read)",
            "only 12 calibration images (about 300 or more give steadier int8 ranges)",
            "skipped 1 unreadable check image of 13 (first: {folder}/red/broken_0.jpg: "
            "not an image Pillow can read)"]),
])
def test_an_unreadable_calibration_image_is_skipped_with_a_count(trained_checkpoint, color_data, tmp_path,
                                                                  check_same, warnings):
    folder = _images_with_a_bad_one(color_data, tmp_path)
    options = _options(color_data, precisions=("int8",), calibration=folder,
                       check=folder if check_same else color_data / "validation",
                       max_check_images=200 if check_same else 9)
    report = convert(trained_checkpoint, tmp_path / "out", options)
    assert report.warnings == [w.format(folder=folder) for w in warnings]
    assert report.artifacts[0].parity.images == (12 if check_same else 9)


def test_a_folder_of_unreadable_images_is_a_dataset_error(trained_checkpoint, color_data, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for i in range(2):
        (folder / f"{i}.png").write_bytes(b"no")
    with pytest.raises(DatasetError, match=rf"{folder}: none of its 2 images could be read \(first: "):
        convert(trained_checkpoint, tmp_path / "out", _options(color_data, check=folder))
    assert not (tmp_path / "out").exists()


def test_the_safe_mode_refusal_is_shown_whole(color_data, tmp_path):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2)(inputs)))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelFileError) as raised:
        convert(path, tmp_path / "out", _options(color_data, labels=("a", "b", "c"), preprocess="none"))
    message = str(raised.value)
    assert message.startswith("lambda.keras: not a Keras model edgelite can load (Requested the deserialization")
    assert "safe_mode=False" in message and message.endswith("enable_unsafe_deserialization().)")


def test_a_hangup_the_process_ignores_stays_ignored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under `nohup`
    try:
        with interrupt_on_terminate():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)  # no KeyboardInterrupt: the run goes on
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM is still turned into one
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
