"""int8 on a trained Xception-style model (separable convolutions, batch norm, residual adds), and its explanation.

The registry's xception_mini smoke config is trained a few epochs on the colour
data. Bound: its int8 TFLite and ONNX artifacts give the Keras model's top-1
class on at least 95% of the 45 check images (2 misses allowed; 100% when this
was written) and lose at most 5 accuracy points.
"""

import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.convert import ConvertOptions, convert
from edgelite.convert.explain import explain_int8

keras = pytest.importorskip("keras")

MIN_AGREEMENT = 0.95
MAX_DROP = 0.05


@pytest.fixture(scope="module")
def mini_checkpoint(color_data, tmp_path_factory):
    from edgelite.train import TrainOptions, get_family, train

    out = tmp_path_factory.mktemp("xception_mini")
    result = train("xception_mini", TrainOptions(data=color_data, out=out, epochs=4, batch_size=16, verbose=0),
                   get_family("xception_mini").smoke)
    return result.best_checkpoint


@pytest.fixture(scope="module")
def mini_int8(mini_checkpoint, color_data, tmp_path_factory):
    options = ConvertOptions(precisions=("int8",), calibration=color_data / "train", check=color_data / "validation")
    return convert(mini_checkpoint, tmp_path_factory.mktemp("mini-int8"), options)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_trained_xception_style_model_keeps_its_answers_in_int8(mini_int8, fmt):
    parity = next(a.parity for a in mini_int8.artifacts if a.format == fmt)
    assert parity.images == 45
    assert parity.top1_agreement >= MIN_AGREEMENT
    assert parity.accuracy >= parity.reference_accuracy - MAX_DROP


def test_int8_tflite_runs_in_one_xnnpack_partition(mini_int8):
    from ai_edge_litert import interpreter as litert

    path = next(a.path for a in mini_int8.artifacts if a.format == "tflite")
    interpreter = litert.Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    names = [op["op_name"] for op in interpreter._get_ops_details()]
    assert "RELU" not in names  # folded into copies of the residual ADDs (edgelite/convert/int8_graph.py)
    assert names.count("DELEGATE") == 1


def test_explain_names_the_layers_of_both_formats(mini_checkpoint, color_data):
    explanation = explain_int8(mini_checkpoint, ConvertOptions(precisions=("int8",), calibration=color_data / "train",
                                                               max_calibration_images=40), images=8)
    layer_names = {layer.name for layer in keras.saving.load_model(mini_checkpoint).layers}
    for fmt in ("tflite", "onnx"):
        worst = explanation.worst(fmt, 5)
        assert len(worst) == 5
        assert all(layer.layer in layer_names for layer in worst), [layer.layer for layer in worst]
        assert [layer.sqnr_db for layer in worst] == sorted(layer.sqnr_db for layer in worst)
    assert all(layer.rmse_per_step is not None and layer.scale for layer in explanation.worst("tflite"))
    assert all(layer.accumulated_sqnr_db is not None for layer in explanation.worst("onnx"))


def test_cli_explain_int8_prints_the_worst_layers(mini_checkpoint, color_data, tmp_path):
    result = CliRunner().invoke(cli, ["convert", str(mini_checkpoint), "--out", str(tmp_path / "out"),
                                      "--format", "tflite", "--precision", "int8", "--calibration",
                                      str(color_data / "train"), "--max-calibration-images", "40",
                                      "--explain-int8"])
    assert result.exit_code == 0, result.output
    assert "int8 tflite: largest error first (32 images)" in result.stdout
    assert "int8 onnx" not in result.stdout  # only the formats converted
    header = next(line for line in result.stdout.splitlines() if "SQNR dB" in line)
    assert [cell.strip() for cell in header.strip("┃│ ").split("┃")] == ["layer", "op", "SQNR dB", "rmse/scale"]
    assert any(name in result.stdout for name in ("_sep1", "_sep2", "_add", "_shortcut"))
