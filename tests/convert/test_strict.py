"""--strict is the library's policy: `convert(strict=True)` fails as the command does."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgelite.cli import cli
from edgelite.convert import ConvertOptions, convert
from edgelite.errors import ParityError


@pytest.fixture()
def black_calibration(tmp_path):
    """Calibration images that are all black: int8 ranges that fit no real photo."""
    folder = tmp_path / "black"
    folder.mkdir()
    for i in range(8):
        Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(folder / f"black_{i}.png")
    return folder


def test_strict_convert_from_python_raises_what_the_cli_prints(trained_checkpoint, color_data, black_calibration,
                                                               tmp_path):
    options = ConvertOptions(formats=("tflite",), precisions=("float32", "int8"), calibration=black_calibration,
                             check=color_data / "validation", strict=True)
    out = tmp_path / "lib"
    with pytest.raises(ParityError) as raised:
        convert(trained_checkpoint, out, options)
    name = f"{trained_checkpoint.stem}_int8.tflite"
    assert str(raised.value) == f"below the --strict parity thresholds: {name} (see {out / 'manifest.json'})"
    report = raised.value.report
    assert [a.path.name for a in report.failed] == [name]
    assert report.failed[0].parity.top1_agreement < 0.97
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["parity"]["passed"] for a in manifest["artifacts"]] == [True, False]

    cli_out = tmp_path / "cli"
    result = CliRunner().invoke(cli, [str(a) for a in (
        "convert", trained_checkpoint, "--out", cli_out, "--format", "tflite", "--precision", "float32,int8",
        "--calibration", black_calibration, "--check", color_data / "validation", "--strict")])
    assert result.exit_code == 1
    message = str(raised.value).replace(str(out), str(cli_out))
    assert result.stderr.strip().splitlines()[-1] == f"error: {message}"
    # The table is shown before the failure: the names' shared start once in its title, then each row's rest.
    assert f"artifact names start {trained_checkpoint.stem}_" in " ".join(result.stdout.split())
    assert "│ int8.tflite " in result.stdout


def test_without_strict_the_same_convert_returns_its_report(trained_checkpoint, color_data, black_calibration,
                                                            tmp_path):
    options = ConvertOptions(formats=("tflite",), precisions=("int8",), calibration=black_calibration,
                             check=color_data / "validation")
    report = convert(trained_checkpoint, tmp_path / "out", options)
    assert [a.precision for a in report.failed] == ["int8"]
