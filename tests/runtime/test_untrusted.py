"""A model file is untrusted: its metadata is checked against its tensors, and a bad file is a ModelFileError.

Metadata mutants edit the JSON inside a real artifact; semantic mutants edit the
flatbuffer with the LiteRT schema; a seeded fuzz edits bytes of a small model.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.cli.common import safe_text
from edgelite.errors import ImageError, ModelFileError, OptionError
from edgelite.runtime import load
from edgelite.runtime.metadata import METADATA_KEY
from edgelite.runtime.tflite_format import read_tflite
from tests.conftest import artifact


class _RawMetadata:
    """What `embed_metadata` reads of an ArtifactMetadata: its JSON, here as a test wrote it."""

    def __init__(self, text: str):
        self.text = text

    def to_json(self) -> str:
        return self.text


_DROP = object()  # a key to remove


def _edited(document: dict, **changes) -> str:
    edited = dict(document)
    for key, value in changes.items():
        if value is _DROP:
            edited.pop(key)
        else:
            edited[key] = value
    return json.dumps(edited)


# (case, edit of the metadata document -> JSON text, what the error says)
METADATA_MUTANTS = [
    ("height 33 for a 32 input", lambda d: _edited(d, input_height=33),
     "the metadata says input height 33, but the input tensor has 32"),
    ("width 30000", lambda d: _edited(d, input_width=30000),
     "input_width must be a whole number from 1 to 4096, got 30000"),
    ("height 0", lambda d: _edited(d, input_height=0), "input_height must be a whole number from 1 to 4096, got 0"),
    ("height -32", lambda d: _edited(d, input_height=-32), "input_height must be a whole number from 1 to 4096"),
    ("height as a string", lambda d: _edited(d, input_height="32"), "got '32'"),
    ("height as a float", lambda d: _edited(d, input_height=32.0), "got 32.0"),
    ("height as a boolean", lambda d: _edited(d, input_height=True), "got True"),
    ("height null", lambda d: _edited(d, input_height=None), "input_height is null"),
    ("height missing", lambda d: _edited(d, input_height=_DROP), "it has no input_height"),
    ("2 labels for 3 classes", lambda d: _edited(d, labels=["a", "b"]),
     "the metadata lists 2 labels, but the model has 3 classes (3 outputs)"),
    ("4 labels for 3 classes", lambda d: _edited(d, labels=["a", "b", "c", "d"]), "the metadata lists 4 labels"),
    ("12 labels for 3 classes", lambda d: _edited(d, labels=[str(i) for i in range(12)]),
     "the metadata lists 12 labels"),
    ("one label", lambda d: _edited(d, labels=["a"]), "expected 2 to 100,000 labels, got 1"),
    ("labels a string", lambda d: _edited(d, labels="abc"), "labels must be a list of strings, got 'abc'"),
    ("labels numbers", lambda d: _edited(d, labels=[1, 2, 3]), "labels must be a list of strings, got (1, 2, 3)"),
    ("labels missing", lambda d: _edited(d, labels=_DROP), "it has no labels"),
    ("a huge label", lambda d: _edited(d, labels=["a", "b", "c" * 5000]), "a label is 5,000 characters long"),
    ("unknown precision", lambda d: _edited(d, precision="int4"), "unknown precision 'int4'"),
    ("unknown output kind", lambda d: _edited(d, output_kind="probabilities"), "unknown output kind 'probabilities'"),
    ("interpolation a number", lambda d: _edited(d, interpolation=7), "unknown interpolation 7"),
    ("decode null", lambda d: _edited(d, decode=None), "decode is null"),
    ("source_sha256 a number", lambda d: _edited(d, source_sha256=5), "source_sha256 must be a string, got 5"),
    ("format_version 2", lambda d: _edited(d, format_version=2),
     "the artifact's edgelite metadata has format_version 2, newer than this edgelite reads (1); "
     "upgrade: pip install -U edgelite"),
    ("format_version 0", lambda d: _edited(d, format_version=0),
     "format_version must be a whole number from 1, got 0"),
    ("format_version a string", lambda d: _edited(d, format_version="1"), "got '1'"),
    ("not JSON", lambda d: "{", "the artifact's edgelite metadata is invalid: Expecting"),
    ("a JSON list", lambda d: "[]", "expected a JSON object, got list"),
    ("deep nesting", lambda d: '{"labels": ' + "[" * 100000 + "]" * 100000 + "}",
     "the artifact's edgelite metadata is invalid"),
]


def _tflite_with_metadata(source: Path, text: str, path: Path) -> Path:
    from edgelite.convert.tflite import embed_metadata

    path.write_bytes(embed_metadata(source.read_bytes(), _RawMetadata(text)))
    return path


def _onnx_with_metadata(source: Path, text: str, path: Path) -> Path:
    import onnx

    model = onnx.load(str(source))
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    entry.value = text
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("case, edit, message", METADATA_MUTANTS, ids=[m[0] for m in METADATA_MUTANTS])
def test_edited_metadata_is_refused_by_load_and_info(artifacts, tmp_path, case, edit, message):
    source = artifact(artifacts, "tflite", "float32")
    document = json.loads(read_tflite(source.read_bytes()).metadata[METADATA_KEY])
    path = _tflite_with_metadata(source, edit(document), tmp_path / "edited.tflite")
    with pytest.raises(ModelFileError, match="^edited.tflite: ") as raised:
        load(path)
    assert message in str(raised.value)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 1
    assert result.stderr == f"error: {safe_text(raised.value)}\n"  # the same problem, on one line


ONNX_MUTANTS = [m for m in METADATA_MUTANTS if m[0] in (
    "height 33 for a 32 input", "width 30000", "2 labels for 3 classes", "12 labels for 3 classes", "labels numbers",
    "unknown precision", "format_version 2", "not JSON")]


@pytest.mark.parametrize("case, edit, message", ONNX_MUTANTS, ids=[m[0] for m in ONNX_MUTANTS])
def test_edited_onnx_metadata_is_refused(artifacts, tmp_path, case, edit, message):
    source = artifact(artifacts, "onnx", "float32")
    import onnx

    document = json.loads(next(p.value for p in onnx.load(str(source)).metadata_props if p.key == METADATA_KEY))
    path = _onnx_with_metadata(source, edit(document), tmp_path / "edited.onnx")
    with pytest.raises(ModelFileError, match="^edited.onnx: ") as raised:
        load(path)
    assert message in str(raised.value)


def test_intact_metadata_still_loads_after_the_round_trip(artifacts, tmp_path):
    source = artifact(artifacts, "tflite", "float32")
    text = read_tflite(source.read_bytes()).metadata[METADATA_KEY].decode()
    model = load(_tflite_with_metadata(source, text, tmp_path / "same.tflite"))
    assert model.labels == ("blue", "green", "red")


# -- semantic mutants: the flatbuffer edited with the LiteRT schema -----------------
def _schema():
    pytest.importorskip("tensorflow")
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _graph(model):
    return model.subgraphs[0]


def _constant(model) -> int:
    """A tensor holding weights."""
    return next(i for i, t in enumerate(_graph(model).tensors)
                if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data) > 64)


def _set(obj, **values):
    for key, value in values.items():
        setattr(obj, key, value)


def _input(model):
    return _graph(model).tensors[_graph(model).inputs[0]]


def _output(model):
    return _graph(model).tensors[_graph(model).outputs[0]]


def _drop_metadata(model):
    model.metadata = []


def _huge_input(model):
    _input(model).shape = np.array([1, 30000, 30000, 3], np.int32)
    _input(model).shapeSignature = None


def _grey_input(model):
    _input(model).shape = np.array([1, 32, 32, 1], np.int32)
    _input(model).shapeSignature = None


def _short_buffer(model):
    buffer = model.buffers[_graph(model).tensors[_constant(model)].buffer]
    buffer.data = buffer.data[:8]


def _op(model, number=0):
    return _graph(model).operators[number]


# (case, artifact precision, edit of the ModelT, what the error says)
SEMANTIC_MUTANTS = [
    ("no inputs", "float32", lambda m: _set(_graph(m), inputs=np.array([], np.int32)),
     "expected one image input and at least one output, got 0 inputs and 1 outputs"),
    ("no outputs", "float32", lambda m: _set(_graph(m), outputs=np.array([], np.int32)),
     "got 1 inputs and 0 outputs"),
    ("two inputs", "float32", lambda m: _set(_graph(m), inputs=np.array([0, 0], np.int32)), "got 2 inputs"),
    ("the output is a weight", "float32", lambda m: _set(_graph(m), outputs=np.array([_constant(m)], np.int32)),
     "expected one row per image"),
    ("input and output swapped", "float32",
     lambda m: _set(_graph(m), inputs=_graph(m).outputs.copy(), outputs=_graph(m).inputs.copy()),
     "which is the model's input"),
    ("input 33 high, metadata 32", "float32",
     lambda m: (_set(_input(m), shape=np.array([1, 33, 32, 3], np.int32), shapeSignature=None)),
     "the metadata says input height 32, but the input tensor has 33"),
    ("a 30000x30000 input", "float32", _huge_input, "would need 10,300 MB; at most 1,024 MB a tensor"),
    ("a grey input", "float32", _grey_input, "expected an RGB input with 3 channels, got shape (1, 32, 32, 1)"),
    ("a 30000x30000 input without metadata", "float32", lambda m: (_drop_metadata(m), _huge_input(m)),
     "would need 10,300 MB"),
    ("a weight buffer cut short", "float32", _short_buffer, "cannot load it"),
    ("a buffer index out of range", "float32", lambda m: _set(_graph(m).tensors[_constant(m)], buffer=9999),
     "out of range buffer 9999"),
    ("an operator input out of range", "float32",
     lambda m: _set(_op(m), inputs=np.array([0, 999, 2], np.int32)), "Invalid tensor index 999"),
    ("an opcode index out of range", "float32", lambda m: _set(_op(m), opcodeIndex=99),
     "Missing registration for opcode_index 99"),
    ("an int32 output", "float32", lambda m: _set(_output(m), type=2),
     "the output tensor is int32; expected float, uint8 or int8"),
    ("an int32 input", "float32", lambda m: _set(_input(m), type=2), "the input tensor is int32"),
    ("no operators", "float32", lambda m: _set(_graph(m), operators=[]), "cannot run it"),
    ("an operator writes the input", "float32", lambda m: _set(_op(m, -1), outputs=np.array([0], np.int32)),
     "writes tensor 0, which is the model's input"),
    ("an operator writes a weight", "float32",
     lambda m: _set(_op(m), outputs=np.array([_constant(m)], np.int32)), "a constant"),
    ("an operator writes a missing tensor", "float32", lambda m: _set(_op(m), outputs=np.array([-1], np.int32)),
     "writes a missing tensor"),
    ("a conv without weights", "float32", lambda m: _set(_op(m), inputs=np.array([0, -1, 2], np.int32)),
     "CONV_2D, lacks its input 1"),
    ("an operator reads a later output", "float32",
     lambda m: _set(_op(m), inputs=np.array([_graph(m).outputs[0], *_op(m).inputs[1:]], np.int32)),
     "reads tensor"),
    ("an input scale of NaN", "int8",
     lambda m: _set(_input(m).quantization, scale=np.array([np.nan], np.float32)),
     "tensor 0 (uint8) has an invalid quantization, scale [nan]"),
    ("a zero output scale", "int8", lambda m: _set(_output(m).quantization, scale=np.array([0.0], np.float32)),
     "(uint8) has an invalid quantization, scale [0.0]"),
    ("a denormal output scale", "int8", lambda m: _set(_output(m).quantization, scale=np.array([3e-45], np.float32)),
     "(uint8) has an invalid quantization, scale [2.8"),
    ("an input zero point of 300", "int8",
     lambda m: _set(_input(m).quantization, zeroPoint=np.array([300], np.int64)),
     "and zero point [300])"),
]


@pytest.mark.parametrize("case, precision, edit, message", SEMANTIC_MUTANTS, ids=[m[0] for m in SEMANTIC_MUTANTS])
def test_semantic_mutants_fail_at_load_with_a_model_file_error(artifacts, tmp_path, case, precision, edit, message):
    schema = _schema()
    source = artifact(artifacts, "tflite", precision)
    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    edit(model)
    path = tmp_path / "mutant.tflite"
    path.write_bytes(_pack(model))
    with pytest.raises(ModelFileError, match="^mutant.tflite: ") as raised:
        load(path)
    assert message in str(raised.value)


# -- a seeded structural fuzz, in a child process so a crash is a failure, not the end of the run ----
def _tiny_tflite() -> bytes:
    tf = pytest.importorskip("tensorflow")
    import keras

    from edgelite.convert.tflite import embed_metadata
    from edgelite.runtime.metadata import ArtifactMetadata

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    flatbuffer = bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return embed_metadata(flatbuffer, ArtifactMetadata(("red", "green", "blue"), 8, 8, graph_scaling="rescale"))


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One structural mutant: bytes set, a field overwritten with a boundary value, a cut, or a splice."""
    out = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:
        for position in rng.integers(0, len(out), rng.integers(1, 9)):
            out[position] = rng.integers(256)
    elif kind == 1:
        position = int(rng.integers(0, len(out) - 4)) // 4 * 4
        value = int(rng.choice([0, 1, 2, 4, 0x7F, 0xFF, 0x7FFFFFFF, 0xFFFFFFFF, len(out), rng.integers(len(out))]))
        out[position:position + 4] = value.to_bytes(4, "little")
    elif kind == 2:
        position = int(rng.integers(0, len(out) - 2)) // 2 * 2
        out[position:position + 2] = int(rng.choice([0, 1, 4, 0xFF, 0xFFFF])).to_bytes(2, "little")
    elif kind == 3:
        del out[int(rng.integers(8, len(out))):]
    else:
        size = int(rng.integers(1, 65))
        source, target = rng.integers(0, len(out) - size, 2)
        out[target:target + size] = data[source:source + size]
    return bytes(out)


def fuzz(path: str, seed: int, count: int) -> dict:
    """Load and predict with `count` seeded mutants of a .tflite; count each outcome."""
    data = Path(path).read_bytes()
    rng = np.random.default_rng(seed)
    outcomes = {"ModelFileError": 0, "prediction": 0, "other": []}
    target = Path(path).with_name("mutant.tflite")
    for number in range(count):
        target.write_bytes(mutate(data, rng))
        try:
            model = load(target, threads=1)
            ranked = model.predict(np.full((8, 8, 3), 90, np.uint8), top_k=3)
            assert all(isinstance(p.label, str) for p in ranked)
            outcomes["prediction"] += 1
        except ModelFileError:
            outcomes["ModelFileError"] += 1
        except Exception as exc:  # the finding this test is for
            outcomes["other"].append(f"mutant {number}: {type(exc).__name__}: {exc}")
    return outcomes


def test_seeded_structural_fuzz_gives_a_model_file_error_or_a_prediction(tmp_path):
    path = tmp_path / "tiny.tflite"
    path.write_bytes(_tiny_tflite())
    code = textwrap.dedent(f"""
        import json
        from tests.runtime.test_untrusted import fuzz
        print(json.dumps(fuzz({str(path)!r}, seed=10, count=300)))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, f"a mutant crashed the interpreter: {result.returncode} {result.stderr[-2000:]}"
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcomes["other"] == []
    assert outcomes["ModelFileError"] > 100 and outcomes["prediction"] > 10  # the fuzz reaches both


# -- smaller holes -------------------------------------------------------------------------------------
def test_a_directory_passed_as_a_model_says_it_is_one(tmp_path):
    folder = tmp_path / "model.tflite"
    folder.mkdir()
    with pytest.raises(ModelFileError, match=r"model.tflite: is a directory, not a model file; pass a .tflite"):
        load(folder)


@pytest.mark.parametrize("source, error, message", [
    (b"not an image", ImageError, "image bytes: not an image Pillow can read"),
    (np.zeros((0, 0, 3), np.uint8), ImageError, "expected an image of at least 1x1 pixels"),
    (np.full((8, 8, 3), np.nan, np.float32), ImageError, "NaN or infinite"),
    ("directory", ImageError, "is a directory, not an image"),
])
def test_bad_images_through_a_model_are_image_errors(artifacts, tmp_path, source, error, message):
    model = load(artifact(artifacts, "tflite", "float32"))
    with pytest.raises(error, match=message):
        model.predict(tmp_path if isinstance(source, str) else source)
    [result] = model.predict_batch([tmp_path if isinstance(source, str) else source])
    assert not result.ok and message.split(":")[-1].strip() in result.error


def test_an_empty_batch_is_an_option_error(artifacts):
    with pytest.raises(OptionError, match="no images given to predict_batch"):
        load(artifact(artifacts, "onnx", "float32")).predict_batch([])
