"""`convert --min-agreement`: the int8 layers that need it kept in float, chosen on images apart from the rest.

The fragile model: a 1x1 convolution ("fragile") whose every filter has one
weight of 1000 on an input channel that is always zero (the ReLU before it is
dead there), beside its ordinary weights of about 0.3. The weight does nothing
in float, but per-channel int8 weights take their scale from it (1000 / 127),
so every ordinary weight rounds to 0 and the int8 layer outputs its bias alone:
plain int8 loses the classes. Kept in float, the model is int8 everywhere else
and agrees again (in ONNX with the pooling after it, see OnnxInt8Variants).
"""

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgelite.cli import cli
from edgelite.convert import ConvertOptions, convert
from edgelite.errors import OptionError
from edgelite.runtime import load
from edgelite.runtime.metadata import CHECKPOINT_METADATA, ArtifactMetadata
from tests.conftest import COLORS, SIZE

keras = pytest.importorskip("keras")

TARGET = 0.95


def _pixels(folder):
    images, labels = [], []
    for index, name in enumerate(sorted(COLORS)):
        for path in sorted((folder / name).glob("*.jpg")):
            images.append(np.asarray(Image.open(path).convert("RGB").resize((SIZE, SIZE)), dtype=np.float32))
            labels.append(index)
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def fragile_checkpoint(color_data, tmp_path_factory):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(8, 1, activation="relu", name="fragile")(x)
    # Named, not numbered: Keras numbers unnamed layers per process, so a test run before would rename it.
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    pixels, labels = _pixels(color_data / "train")
    model.fit(pixels, labels, epochs=30, batch_size=16, verbose=0)
    kernel, bias = model.get_layer("conv1").get_weights()
    # channel 7 is dead: its inputs are 0..1, so ReLU(-0.01 * sum - 1) = 0 on every image (weights not all
    # zero: a zero-weight channel overflows its int32 bias in onnxruntime's quantizer, a second fault)
    kernel[..., 7], bias[7] = -0.01, -1.0
    model.get_layer("conv1").set_weights([kernel, bias])
    kernel, bias = model.get_layer("fragile").get_weights()
    kernel[0, 0, 7, :] = 1000.0  # multiplies zero: no change in float, every other weight rounds to 0 in int8
    model.get_layer("fragile").set_weights([kernel, bias])
    path = tmp_path_factory.mktemp("fragile") / "fragile.keras"
    model.save(path)
    return path


def _options(color_data, **extra):
    return ConvertOptions(precisions=("int8",), calibration=color_data / "train", check=color_data / "validation",
                          **extra)


@pytest.fixture(scope="module")
def plain(fragile_checkpoint, color_data, tmp_path_factory):
    return convert(fragile_checkpoint, tmp_path_factory.mktemp("plain"), _options(color_data))


@pytest.fixture(scope="module")
def targeted(fragile_checkpoint, color_data, tmp_path_factory):
    return convert(fragile_checkpoint, tmp_path_factory.mktemp("targeted"),
                   _options(color_data, min_agreement=TARGET))


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_plain_int8_breaks_on_the_fragile_layer(plain, fmt):
    parity = next(a.parity for a in plain.artifacts if a.format == fmt)
    assert parity.top1_agreement < 0.8  # else the test model proves nothing


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_the_fragile_layer_is_kept_in_float_and_the_target_met(targeted, fmt):
    artifact = next(a for a in targeted.artifacts if a.format == fmt)
    chosen = artifact.float_layers
    # onnxruntime's optimizer quantizes the weights of a float Conv again when it reads a DequantizeLinear, so
    # in ONNX the layer reading its output stays float with it (OnnxInt8Variants)
    assert chosen.layers == {"tflite": ("fragile",), "onnx": ("fragile", "pool")}[fmt]
    assert chosen.tried == ((1, chosen.selection_after),)  # the first candidate was enough
    assert chosen.met and chosen.selection_after >= TARGET > chosen.selection_before
    assert artifact.parity.top1_agreement >= TARGET  # on the reporting half, used for neither
    assert artifact.parity.images == 21 and chosen.selection_images == 24  # 15 per class: 8 choose, 7 report
    assert chosen.agreement_before < 0.8 and chosen.agreement_after == artifact.parity.top1_agreement
    assert chosen.latency_ms > 0 and chosen.latency_ms_plain > 0
    assert load(artifact.path).metadata.float_layers == chosen.layers


def test_manifest_shows_the_price_and_which_images(targeted):
    manifest = json.loads((targeted.out / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        assert entry["float_layers"]["layers"][0] == "fragile"
        assert entry["float_layers"]["agreement_after"] > entry["float_layers"]["agreement_before"]
        assert entry["float_layers"]["latency_ratio"] > 0
    assert manifest["selection_images"].startswith("24 images: every other image of each class of")
    assert manifest["check_images"]["images"].startswith("21 images: the other half of")


def test_a_target_plain_int8_meets_changes_nothing(fragile_checkpoint, color_data, plain, tmp_path):
    met = convert(fragile_checkpoint, tmp_path, _options(color_data, min_agreement=0.01))
    for fmt in ("tflite", "onnx"):
        before = next(a for a in plain.artifacts if a.format == fmt)
        after = next(a for a in met.artifacts if a.format == fmt)
        assert after.float_layers.layers == () and after.float_layers.met
        pixels, _ = _pixels(color_data / "validation")
        np.testing.assert_array_equal(load(before.path).run(pixels), load(after.path).run(pixels))
        assert load(after.path).metadata.float_layers == ()
        if fmt == "tflite":
            assert after.path.read_bytes() == before.path.read_bytes()


@pytest.mark.parametrize("extra, message", [
    ({"min_agreement": 0.99, "check": None}, "pass --check DIR, a folder other than --calibration"),
    ({"min_agreement": 0.99, "precisions": ("float32",)}, "add int8 to --precision"),
    ({"selection": "x"}, "--selection is used only with --min-agreement or --max-drop"),
    ({"min_agreement": 1.5}, "--min-agreement must be a percentage above 0 and at most 100, got 150"),
])
def test_bad_target_options_are_refused(color_data, extra, message):
    values = {"precisions": ("int8",), "calibration": color_data / "train", "check": color_data / "validation",
              **extra}
    with pytest.raises(OptionError, match=message.replace("-", r"\-").replace("(", r"\(")):
        ConvertOptions(**values)


def test_cli_refuses_a_check_folder_inside_the_calibration_folder(color_data, tmp_path):
    result = CliRunner().invoke(cli, ["convert", str(tmp_path / "m.keras"), "--out", str(tmp_path / "out"),
                                      "--precision", "int8", "--calibration", str(color_data),
                                      "--check", str(color_data / "validation"), "--min-agreement", "99.5"])
    assert result.exit_code != 0
    assert "share images; with an agreement target" in result.output


def test_cli_shows_the_price_and_which_images(fragile_checkpoint, color_data, tmp_path):
    result = CliRunner().invoke(cli, ["convert", str(fragile_checkpoint), "--out", str(tmp_path / "out"),
                                      "--format", "tflite", "--precision", "int8",
                                      "--calibration", str(color_data / "train"),
                                      "--check", str(color_data / "validation"), "--min-agreement", "95"])
    assert result.exit_code == 0, result.output
    assert "parity on 21 images: the other half of" in result.output
    assert "int8 target top-1 agreement >= 95.0%: layers chosen on 24 images: every other image" in result.output
    row = next(line for line in result.output.splitlines() if "fragile_int8.tflite" in line and "->" in line)
    assert "fragile" in row.split("fragile_int8.tflite", 1)[1] and "met" in row


def test_float_layers_metadata_round_trips_and_old_documents_read_as_none():
    from edgelite.errors import ModelFileError

    plain = ArtifactMetadata(labels=("a", "b"), input_height=8, input_width=8, precision="int8")
    assert "float_layers" not in json.loads(plain.to_json())  # a plain artifact's document is as before
    assert ArtifactMetadata.from_json(plain.to_json()).float_layers == ()
    kept = ArtifactMetadata(labels=("a", "b"), input_height=8, input_width=8, float_layers=["block1", "head"])
    assert ArtifactMetadata.from_json(kept.to_json()).float_layers == ("block1", "head")
    bad = json.loads(kept.to_json()) | {"float_layers": "head"}
    with pytest.raises(ModelFileError, match="float_layers must be a list of strings"):
        ArtifactMetadata.from_json(json.dumps(bad))


@pytest.mark.parametrize("needed, available, tries", [
    (1, 10, [1]), (3, 10, [1, 2, 4, 3]), (5, 10, [1, 2, 4, 8, 6, 5]), (10, 10, [1, 2, 4, 8, 10, 9]),
    (11, 10, [1, 2, 4, 8, 10]), (1, 0, []),
])
def test_the_search_finds_the_fewest_layers_growing_then_bisecting(needed, available, tries):
    from edgelite.convert.agreement import _smallest_meeting

    tried = []

    def attempt(count):
        tried.append(count)
        return count >= needed

    assert _smallest_meeting(attempt, available) == (needed if needed <= available else None)
    assert tried == tries


def test_bench_pick_weighs_the_kept_layers_and_names_them(plain, targeted, fragile_checkpoint, color_data, tmp_path):
    fast, kept = (next(a.path for a in report.artifacts if a.format == "tflite") for report in (plain, targeted))
    reference = tmp_path / "fragile.keras"  # the checkpoint with the labels convert took from the folders
    reference.write_bytes(fragile_checkpoint.read_bytes())
    meta = load(kept).metadata
    with zipfile.ZipFile(reference, "a") as archive:
        labelled = ArtifactMetadata(meta.labels, meta.input_height, meta.input_width)
        archive.writestr(CHECKPOINT_METADATA, labelled.to_json())
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", str(fast), str(kept), "--data", str(color_data / "validation"),
                                      "--reference", str(reference), "--runs", "3", "--warmup", "1",
                                      "--pick", "--max-drop", "100", "--min-agreement", str(TARGET * 100),
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {row["path"]: row["float_layers"] for row in report["rows"]} == \
        {str(fast): [], str(kept): ["fragile"], str(reference): []}
    assert report["pick"]["path"] == str(kept) and report["pick"]["float_layers"] == ["fragile"]
    assert "1 layer kept in float: fragile" in result.stdout


@pytest.mark.parametrize("tried, says", [
    ((), "no layer could be kept in float: none of the layers ranked by their int8 error was found in its int8 graph"),
    (((1, 0.9), (2, 0.93)), "with 0 layers in float (best tried: 93.0%)"),
])
def test_a_missed_target_says_whether_any_variant_was_tried(tmp_path, tried, says):
    from edgelite.convert import ArtifactReport, _missed_targets
    from edgelite.convert.agreement import FloatLayers
    from edgelite.convert.parity import Parity

    parity = Parity(10, 0.1, 0.9, None, None, True)
    layers = FloatLayers("top-1 agreement >= 99.5%", (), (), False, 10, 0.9, 0.93 if tried else 0.9, 0.9, 0.9,
                         None, None, tried=tried)
    [message] = _missed_targets([ArtifactReport(tmp_path / "m_int8.onnx", "onnx", "int8", 1, "0" * 64, parity,
                                                float_layers=layers)])
    assert message.startswith("m_int8.onnx misses the target (top-1 agreement >= 99.5%) on the selection images")
    assert says in message
