import pytest

from edgelite.errors import ModelFileError
from edgelite.runtime.metadata import ArtifactMetadata
from edgelite.runtime.tflite_format import read_tflite, read_tflite_file
from tests.conftest import artifact


def test_reads_operators_and_edgelite_metadata(artifacts):
    info = read_tflite_file(artifact(artifacts, "tflite", "int8"))
    names = {op.name for op in info.operator_codes}
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= names
    assert all(op.version >= 1 for op in info.operator_codes)
    assert ArtifactMetadata.from_json(info.metadata["edgelite"]).precision == "int8"
    assert info.subgraph_count == 1


@pytest.mark.parametrize("cut", [7, 100, 0.5, 0.9])
def test_truncation_anywhere_is_caught(artifacts, cut):
    data = artifact(artifacts, "tflite", "float32").read_bytes()
    size = cut if isinstance(cut, int) else int(len(data) * cut)
    with pytest.raises(ModelFileError, match="not a valid .tflite file"):
        read_tflite(data[:size], "cut.tflite")


def test_wrong_identifier():
    with pytest.raises(ModelFileError, match="'TFL3' file identifier is missing"):
        read_tflite(b"\x10\x00\x00\x00ABCD" + bytes(64), "x.tflite")
