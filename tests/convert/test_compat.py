"""--compat tflite-runtime-2.14: artifacts the last tflite-runtime release can load."""

import pytest

from edgelite.convert import ConvertOptions, convert
from edgelite.errors import ConversionError, OptionError
from edgelite.runtime.op_versions import version_key
from edgelite.runtime.tflite_format import read_tflite_file


def _fully_connected_versions(path):
    return {op.version for op in read_tflite_file(path).operator_codes if op.name == "FULLY_CONNECTED"}


def test_compat_dynamic_range_uses_per_tensor_dense_weights(trained_checkpoint, color_data, artifacts, tmp_path):
    default = next(a for a in artifacts.artifacts if a.format == "tflite" and a.precision == "dynamic")
    assert default.min_runtime == "2.17.0"
    assert _fully_connected_versions(default.path) == {12}

    report = convert(trained_checkpoint, tmp_path, ConvertOptions(
        formats=("tflite",), precisions=("dynamic",), check=color_data / "validation",
        compat="tflite-runtime-2.14"))
    compat = report.artifacts[0]
    assert _fully_connected_versions(compat.path) == {9}
    assert version_key(compat.min_runtime) <= version_key("2.14.0")
    assert compat.parity.top1_agreement == 1.0
    assert compat.size_bytes <= 1.05 * default.size_bytes


def test_compat_fails_plainly_when_an_op_is_too_new(trained_checkpoint, color_data, tmp_path, monkeypatch):
    import edgelite.convert as convert_module

    monkeypatch.setattr(convert_module, "COMPAT_RUNTIMES", {"tflite-runtime-2.14": "1.0.0"})
    with pytest.raises(ConversionError, match=r"_float32\.tflite does not load in tflite-runtime-2\.14: CONV_2D v1 "
                                              r"\(needs 1\.5\.0\)"):
        convert(trained_checkpoint, tmp_path / "out", ConvertOptions(
            formats=("tflite",), precisions=("float32",), check=color_data / "validation",
            compat="tflite-runtime-2.14"))
    assert not (tmp_path / "out").exists()


def test_unknown_compat_target():
    with pytest.raises(OptionError, match="unknown --compat 'tflite-runtime-2.1'"):
        ConvertOptions(precisions=("float32",), compat="tflite-runtime-2.1")
