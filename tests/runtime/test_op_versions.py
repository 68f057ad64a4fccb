"""Minimum runtimes read from op versions, and what an old tflite-runtime is told."""

import pytest

import edgelite.runtime.backends as backends
from edgelite.errors import ModelFileError
from edgelite.runtime import load
from edgelite.runtime.op_versions import minimum_runtime, too_new_for, version_key
from edgelite.runtime.tflite_format import OperatorCode, read_tflite_file
from tests.conftest import artifact


def test_table_facts():
    codes = [OperatorCode(9, 12, ""), OperatorCode(3, 1, "")]  # FULLY_CONNECTED v12, CONV_2D v1
    assert minimum_runtime(codes) == "2.17.0"
    assert [(r.op, r.version, r.runtime) for r in too_new_for(codes, "2.14.0")] == [
        ("FULLY_CONNECTED", 12, "2.17.0")]
    assert too_new_for(codes, "2.17.0") == []
    assert version_key("2.14.0") < version_key("2.17.0") < version_key("10.0")


@pytest.mark.parametrize("precision, loads_in_2_14", [("float32", True), ("float16", True), ("int8", True),
                                                      ("dynamic", False)])
def test_which_artifacts_an_old_runtime_can_load(artifacts, precision, loads_in_2_14):
    codes = read_tflite_file(artifact(artifacts, "tflite", precision)).operator_codes
    assert (too_new_for(codes, "2.14.0") == []) is loads_in_2_14


def test_info_shows_the_minimum_runtime(artifacts):
    from edgelite.runtime.describe import describe

    info = describe(artifact(artifacts, "tflite", "dynamic"))
    assert info["min_runtime"] == "2.17.0"
    assert {"name": "FULLY_CONNECTED", "version": 12, "min_runtime": "2.17.0"} in info["operators"]


def _pretend_tflite_runtime(monkeypatch, factory):
    monkeypatch.setattr(backends, "_import_tflite_interpreter",
                        lambda choice="auto": (factory, "tflite-runtime", "2.14.0"))


def test_old_tflite_runtime_is_told_which_op_and_what_to_install(artifacts, monkeypatch):
    def never(**kwargs):
        raise AssertionError("the op check must come before the interpreter")

    _pretend_tflite_runtime(monkeypatch, never)
    with pytest.raises(ModelFileError) as error:
        load(artifact(artifacts, "tflite", "dynamic"))
    assert str(error.value) == (
        f"{artifact(artifacts, 'tflite', 'dynamic').name}: tflite-runtime 2.14.0 does not have the op "
        "FULLY_CONNECTED version 12 (TFLite 2.17.0 or newer has it); install ai-edge-litert: "
        "pip install ai-edge-litert")


def test_interpreter_op_errors_are_explained(artifacts, monkeypatch):
    def fails(**kwargs):
        raise ValueError("Didn't find op for builtin opcode 'GELU' version '3'. An older version of this "
                         "builtin might be supported.\nRegistration failed.")

    _pretend_tflite_runtime(monkeypatch, fails)
    with pytest.raises(ModelFileError, match=r"tflite-runtime 2\.14\.0 does not know the op GELU version 3; "
                                             r"this artifact needs a newer runtime: pip install ai-edge-litert"):
        load(artifact(artifacts, "tflite", "float32"))
