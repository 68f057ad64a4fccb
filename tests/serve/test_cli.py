"""`edgelite serve` from the command line: what it says before a server starts."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgelite.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_help_names_every_endpoint_and_an_example():
    result = run("serve", "--help")
    assert result.exit_code == 0
    for text in ("POST /predict", "/v2/models/NAME/infer", "/metrics", "--max-batch", "--max-delay-ms",
                 "--max-upload-mb", "--max-queue", "--reload-on-change", "curl -F file=@photo.jpg"):
        assert text in result.output


def test_a_missing_model_is_one_line_and_exit_1(tmp_path):
    result = run("serve", tmp_path / "nope.tflite")
    assert result.exit_code == 1
    assert result.output == f"error: {tmp_path / 'nope.tflite'}: no such file\n"


def test_two_files_with_one_name_are_refused(artifacts, tmp_path):
    from tests.conftest import artifact

    first = artifact(artifacts, "tflite", "int8")
    (tmp_path / "other").mkdir()
    second = tmp_path / "other" / first.name
    second.write_bytes(first.read_bytes())
    result = run("serve", first, second)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: two models are named '{first.stem}'")


def test_bad_limits_are_usage_errors():
    result = run("serve", "model.tflite", "--max-batch", "0")
    assert result.exit_code == 2
    assert "--max-batch" in result.output


def _serve_process(model, *args: str):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([sys.executable, "-m", "edgelite", "serve", str(model), *args], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])


def test_a_port_in_use_is_one_error_line_and_exit_1(artifacts):
    import socket

    from tests.conftest import artifact

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve_process(artifact(artifacts, "tflite", "int8"), "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (f"error: cannot listen on 127.0.0.1:{port}: Address already in use; "
                                              "another process listens there: stop it or choose another --port")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("host", ["no-such-host.invalid", "300.1.2.3", "192.0.2.1"])
def test_a_bad_host_is_one_error_line_and_exit_1(artifacts, host):
    from tests.conftest import artifact

    result = _serve_process(artifact(artifacts, "tflite", "int8"), "--host", host, "--port", "0")
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"error: cannot listen on {host}:0: ")
    assert "Traceback" not in result.stderr
