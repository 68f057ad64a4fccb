"""PyTorch (.pt2) and ONNX classifiers in: the six artifacts, parity with torch, predict and serve on them.

A small ResNet-style CNN (residual blocks, batch norm, ImageNet normalisation
outside the net as torchvision does, logits) is trained here for a few seconds
on the sample photos in examples/; nothing is downloaded. Skipped when torch or
onnx2tf is not installed (the [torch] extra; .ci/run installs it).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.convert import ConvertOptions, convert
from edgelite.runtime import load
from edgelite.runtime.folder import pixel_batches, read_folder
from edgelite.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD

torch = pytest.importorskip("torch")
if importlib.util.find_spec("onnx2tf") is None:  # looked up, not imported: see the recursion-limit test
    pytest.skip("could not find onnx2tf (the [onnx-in] extra)", allow_module_level=True)
pytest.importorskip("onnxscript")

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "clothing-mini"
SIZE = 32


def _pixels(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    items = read_folder(folder)
    classes = sorted({i.label for i in items})
    pixels = np.concatenate(list(pixel_batches([i.path for i in items], SIZE, SIZE)))
    return pixels, np.array([classes.index(i.label) for i in items]), classes


def _normalized(pixels: np.ndarray):
    """torchvision's recipe, written out here apart from edgelite's: x/255, minus mean, over std, NCHW."""
    x = (pixels / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))


class Residual(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def small_resnet(classes: int):
    def down(cin: int, cout: int):
        return [torch.nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(cout),
                torch.nn.ReLU()]

    return torch.nn.Sequential(*down(3, 12), Residual(12), *down(12, 24), Residual(24),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(24, classes))


@pytest.fixture(scope="module")
def torch_models(tmp_path_factory):
    """The trained net, saved as a .pt2 (dynamic batch) and as ONNX (fixed batch 1), and its classes."""
    return train_and_save(tmp_path_factory.mktemp("torch"))


def train_and_save(folder: Path) -> dict:
    """Train the small ResNet on the sample photos; save it in `folder` as resnet.pt2 and resnet.onnx."""
    torch.manual_seed(0)
    pixels, truth, classes = _pixels(SAMPLES / "train")
    net = small_resnet(len(classes))
    epochs = 30
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 5e-3, total_steps=epochs * -(-len(pixels) // 32))
    inputs, targets = _normalized(pixels), torch.from_numpy(truth)
    threads = torch.get_num_threads()
    # One thread: batches this small train about ten times faster that way on a loaded 2-core machine (200 s
    # with two threads contending for the cores, 15 s with one).
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            net.train()
            for batch in torch.randperm(len(inputs)).split(32):
                x = inputs[batch]
                x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(3), x)
                loss = torch.nn.functional.cross_entropy(net(x), targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    # a batch of 2 to trace: torch.export fixes a dimension it sees at 1
    program = torch.export.export(net, (torch.zeros(2, 3, SIZE, SIZE),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", max=1024)},))
    torch.export.save(program, str(folder / "resnet.pt2"))
    torch.onnx.export(net, (torch.zeros(1, 3, SIZE, SIZE),), str(folder / "resnet.onnx"), dynamo=True,
                      external_data=False)
    return {"net": net, "pt2": folder / "resnet.pt2", "onnx": folder / "resnet.onnx", "classes": classes}


@pytest.fixture(scope="module", params=["pt2", "onnx"])
def converted(request, torch_models, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"out_{request.param}")
    report = convert(torch_models[request.param], out, ConvertOptions(
        calibration=SAMPLES / "train", check=SAMPLES / "validation", preprocess="imagenet"))
    return report, torch_models


def test_six_artifacts_follow_torch(converted):
    report, models = converted
    parity = {(a.format, a.precision): a.parity for a in report.artifacts}
    assert sorted(parity) == sorted([("tflite", p) for p in ("float32", "float16", "dynamic", "int8")]
                                    + [("onnx", "float32"), ("onnx", "int8")])
    assert all(p.images == 100 for p in parity.values())  # the validation photos, none used for calibration
    for fmt in ("tflite", "onnx"):
        assert parity[fmt, "float32"].max_abs_diff <= 1e-4
        # int8 works (a broken graph agrees on about 1 in 10); issue 20's 99% is not reached on this net, nor
        # on nine variants tried (95-98.5% on 341 photos; see benchmarks/RESULTS.md), so it is not asserted here
        assert parity[fmt, "int8"].top1_agreement >= 0.9, parity[fmt, "int8"]
    assert parity["tflite", "float32"].reference_accuracy > 0.2  # it learned something: 10 classes


def test_an_agreement_target_keeps_layers_of_the_source_graph_in_float(torch_models, tmp_path):
    """Issue 18's target on an ONNX source (a .pt2 goes the same way): both formats build variants of it.

    The ONNX variants used to be built from tf2onnx's export of the onnx2tf Keras model, whose node names
    match none the debugger ranks on the source graph: no variant was tried and the target silently missed.
    """
    import onnx

    report = convert(torch_models["onnx"], tmp_path / "out", ConvertOptions(
        precisions=("int8",), calibration=SAMPLES / "train", check=SAMPLES / "validation",
        preprocess="imagenet", min_agreement=1.0))
    graph = {node.name for node in onnx.load(str(torch_models["onnx"])).graph.node}
    for artifact in report.artifacts:
        chosen = artifact.float_layers
        assert chosen.selection_before < 1.0  # else nothing is searched and the test proves nothing
        assert chosen.tried and chosen.layers, (artifact.path.name, chosen)
        assert chosen.selection_after > chosen.selection_before
        assert load(artifact.path).metadata.float_layers == chosen.layers
        assert artifact.parity.images == 50 and chosen.selection_images == 50  # the validation photos, halved
        if artifact.format == "onnx":
            assert set(chosen.nodes) <= graph | {"edgelite_scale", "edgelite_offset", "edgelite_nhwc_to_nchw"}


def test_float32_artifacts_match_the_module_on_raw_pixels(converted):
    """Apart from the convert report: the artifacts on raw 0-255 NHWC against the nn.Module in torch."""
    report, models = converted
    pixels, _, _ = _pixels(SAMPLES / "validation")
    with torch.no_grad():
        expected = models["net"](_normalized(pixels)).numpy()
    for artifact in report.artifacts:
        model = load(artifact.path)
        assert model.metadata.graph_scaling == "imagenet" and model.metadata.input_scaling == "none"
        assert model.metadata.output_kind == "logits"
        assert list(model.labels) == models["classes"]
        if artifact.precision == "float32":
            assert np.abs(model.run(pixels) - expected).max() <= 1e-4, artifact.path.name


def test_predict_and_serve_answer_on_the_artifacts(converted):
    report, _ = converted
    photo = next((SAMPLES / "validation" / "shoes").iterdir())
    for artifact in report.artifacts:
        result = CliRunner().invoke(cli, ["predict", str(artifact.path), str(photo), "--json"])
        assert result.exit_code == 0, result.output
        top = json.loads(result.stdout)["results"][0]["predictions"][0]
        assert top["label"] in load(artifact.path).labels
    from tests.serve.test_app import serving
    from edgelite.serve import ServeOptions, create_app

    tflite = next(a.path for a in report.artifacts if a.precision == "int8" and a.format == "tflite")
    onnx = next(a.path for a in report.artifacts if a.precision == "float32" and a.format == "onnx")
    app = create_app({"int8": load(tflite), "onnx": load(onnx)}, ServeOptions(max_delay_ms=0))
    with serving(app) as client:
        for name in ("int8", "onnx"):
            answer = client.post(f"/models/{name}/predict", content=photo.read_bytes(),
                                 headers={"Content-Type": "image/jpeg"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"][0]["label"] in load(tflite).labels


def test_convert_module_from_python(torch_models, tmp_path):
    from edgelite.convert.pytorch import convert_module

    report = convert_module(torch_models["net"], torch.zeros(1, 3, SIZE, SIZE), tmp_path / "out", ConvertOptions(
        formats=("onnx",), precisions=("float32",), check=SAMPLES / "validation", preprocess="imagenet"),
        name="net")
    assert [a.path.name for a in report.artifacts] == ["net_float32.onnx"]
    assert report.artifacts[0].parity.max_abs_diff <= 1e-4


def _two_input_onnx(path: Path):
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 8, 8])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Add", ["a", "b"], ["out"])], "two",
                                                  [a, b], [out])), str(path))


def _token_onnx(path: Path):
    import onnx
    from onnx import TensorProto, helper

    tokens = helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, 16])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 16])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["tokens"], ["out"])], "tokens",
                                                  [tokens], [out])), str(path))


def _pickle(path: Path, models):
    torch.save(models["net"].state_dict(), str(path))


def _truncated(path: Path, models):
    path.write_bytes(models["pt2"].read_bytes()[:4000])


def test_onnx2tf_leaves_the_recursion_limit_as_it_was():
    """Importing onnx2tf sets the limit to the C int maximum: a deeply nested JSON document (a hostile
    artifact's metadata) would then overflow the C stack and kill the process, not raise RecursionError."""
    code = ("import json, sys\n"
            "from edgelite.convert.onnx2tf import _import_onnx2tf\n"
            "before = sys.getrecursionlimit(); _import_onnx2tf(); assert sys.getrecursionlimit() == before\n"
            "try:\n    json.loads('[' * 1_000_000)\nexcept RecursionError:\n    print('RecursionError')\n")
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "RecursionError"


@pytest.mark.parametrize("name, make, message", [
    ("net.pth", _pickle, "error: net.pth is a PyTorch pickle (torch.save); edgelite never unpickles a file. "
                         "Export the model with torch.export and convert the .pt2: torch.export.save("),
    ("cut.pt2", _truncated, "error: cut.pt2: not a torch.export program edgelite can read ("),
    ("two.onnx", lambda p, m: _two_input_onnx(p),
     "error: two.onnx: expected one image input (N, 3, H, W), got 2 inputs (a, b)"),
    ("tokens.onnx", lambda p, m: _token_onnx(p),
     "error: tokens.onnx: expected a float32 image input (N, 3, H, W), got 'tokens' (1, 16) of ONNX type 1"),
])
def test_bad_inputs_get_one_line_and_nothing_written(torch_models, tmp_path, name, make, message):
    path = tmp_path / name
    make(path, torch_models)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["convert", str(path), "--out", str(out), "--preprocess", "imagenet",
                                      "--calibration", str(SAMPLES / "train")])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_onnx_source_without_preprocess_asks_for_it(torch_models, tmp_path):
    result = CliRunner().invoke(cli, ["convert", str(torch_models["onnx"]), "--out", str(tmp_path / "out"),
                                      "--precision", "float32", "--check", str(SAMPLES / "validation")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: resnet.onnx does not say how its pixels are scaled; "
                                    "pass --preprocess imagenet")
    assert not (tmp_path / "out").exists()


def test_cli_converts_a_pt2_with_its_own_mean_and_std(torch_models, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["convert", str(torch_models["pt2"]), "--out", str(out), "--format", "onnx",
                                      "--precision", "float32", "--preprocess", "imagenet", "--mean", "0.5,0.5,0.5",
                                      "--std", "0.25,0.25,0.25", "--check", str(SAMPLES / "validation"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [a["file"] for a in data["artifacts"]] == ["resnet_float32.onnx"]
    assert data["artifacts"][0]["parity"]["max_abs_diff"] <= 1e-4
    assert "scaling imagenet (mean 0.5,0.5,0.5, std 0.25,0.25,0.25) and the NHWC-to-NCHW transpose put inside " \
           "the graph; artifacts take raw 0-255 RGB (N, H, W, 3)" in data["notes"]
    pixels, _, _ = _pixels(SAMPLES / "validation")
    with torch.no_grad():
        expected = torch_models["net"](torch.from_numpy(
            ((pixels / 255.0 - 0.5) / 0.25).transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    assert np.abs(load(out / "resnet_float32.onnx").run(pixels) - expected).max() <= 1e-4
