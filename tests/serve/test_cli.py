"""`edgelite serve` from the command line: what it says before a server starts."""

from __future__ import annotations

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
