"""A Keras checkpoint is scored by bench and evaluate as its artifacts are: one wrapper, class scores included."""

import zipfile

import pytest
from PIL import Image

from edgelite.bench import BenchOptions, run_bench
from edgelite.bench.evaluate import evaluate

SIZE = 8
# One logit per image, the same for every image: 0.25 is sigmoid 0.56, the positive class.
LOGIT = 0.25


@pytest.fixture(scope="module")
def logits_checkpoint(tmp_path_factory):
    """A one-unit logits head (no activation) whose output is LOGIT for any image, labels inside."""
    from edgelite.lazy import import_keras
    from edgelite.runtime.metadata import CHECKPOINT_METADATA, ArtifactMetadata

    _, keras = import_keras("convert")
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(1, kernel_initializer="zeros",
                                                 bias_initializer=keras.initializers.Constant(LOGIT))])
    path = tmp_path_factory.mktemp("logits") / "logits.keras"
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(CHECKPOINT_METADATA,
                         ArtifactMetadata(("neg", "pos"), SIZE, SIZE, output_kind="logits").to_json())
    return path


@pytest.fixture(scope="module")
def three_neg_one_pos(tmp_path_factory):
    root = tmp_path_factory.mktemp("np")
    for name, count in (("neg", 3), ("pos", 1)):
        (root / name).mkdir()
        for i in range(count):
            Image.new("RGB", (SIZE, SIZE), (i * 40, 90, 200)).save(root / name / f"{i}.png")
    return root


def test_bench_thresholds_a_one_logit_head_after_the_sigmoid(logits_checkpoint, three_neg_one_pos):
    options = BenchOptions(threads=(1,), runs=2, warmup=0, data=three_neg_one_pos, reference=logits_checkpoint)
    row, = run_bench([], options).rows
    assert row["error"] is None and row["kind"] == "keras"
    # sigmoid(0.25) > 0.5: every image is "pos", right on 1 of 4. Raw logits thresholded at 0.5 said "neg" (3 of 4).
    assert row["accuracy"] == 0.25
    assert row["labels"] == ["neg", "pos"]


def test_bench_and_evaluate_agree_on_the_checkpoint(logits_checkpoint, three_neg_one_pos):
    result = evaluate(logits_checkpoint, three_neg_one_pos)
    assert result.accuracy == 0.25 and result.confusion == [[0, 3], [0, 1]]


def test_a_checkpoint_without_labels_is_loaded_once_and_named(tmp_path, monkeypatch):
    from edgelite.convert import source
    from edgelite.lazy import import_keras

    _, keras = import_keras("convert")
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")])
    path = tmp_path / "bare.keras"
    model.save(path)
    loads = []
    real = source._load_keras
    monkeypatch.setattr(source, "_load_keras", lambda *args: loads.append(args) or real(*args))
    classifier = source.load_classifier(path, name_unlabelled=True)
    assert len(loads) == 1
    assert classifier.labels == ("class_0", "class_1")
    assert classifier.source.notes[-1] == "no labels in the checkpoint; named them class_0, class_1, ..."
