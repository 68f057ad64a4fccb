"""Every converter's parity with the Keras model, and the size it should shrink to.

Tolerances: float32 must match to 1e-4 (the --strict threshold). float16
weights round to 11 significant bits, so scores move by up to about 1e-2 on this
model; int8 (weights, or weights and activations) moves scores by up to about
0.1 on three well-separated classes, where the top-1 class must not change.
"""

import json

import pytest

from tests.conftest import artifact

# precision: (largest max|diff| allowed, smallest top-1 agreement, largest size as a fraction of float32)
EXPECTED = {
    "float32": (1e-4, 1.0, 1.01),
    "float16": (1e-2, 1.0, 0.55),
    "dynamic": (1e-1, 1.0, 0.30),
    "int8": (1e-1, 1.0, 0.30),
}


@pytest.mark.parametrize("fmt, precision", [("tflite", "float32"), ("tflite", "float16"), ("tflite", "dynamic"),
                                            ("tflite", "int8"), ("onnx", "float32"), ("onnx", "int8")])
def test_parity_and_size(artifacts, fmt, precision):
    report = next(a for a in artifacts.artifacts if a.format == fmt and a.precision == precision)
    max_diff, min_agreement, max_fraction = EXPECTED[precision]
    assert report.parity.images == 45
    assert report.parity.max_abs_diff <= max_diff
    assert report.parity.top1_agreement >= min_agreement
    assert report.parity.accuracy is not None and report.parity.accuracy >= 0.9
    float32 = artifact(artifacts, fmt, "float32").stat().st_size
    assert report.size_bytes <= max_fraction * float32
    assert report.parity.passed


def test_float32_tflite_and_onnx_are_tight(artifacts):
    for fmt in ("tflite", "onnx"):
        parity = next(a for a in artifacts.artifacts if a.format == fmt and a.precision == "float32").parity
        assert parity.max_abs_diff < 1e-5


def test_manifest_lists_every_artifact_with_hash_and_parity(artifacts):
    manifest = json.loads((artifacts.out / "manifest.json").read_text())
    assert {a["file"] for a in manifest["artifacts"]} == {a.path.name for a in artifacts.artifacts}
    for entry, report in zip(manifest["artifacts"], artifacts.artifacts):
        assert entry["sha256"] == report.sha256 and len(entry["sha256"]) == 64
        assert entry["size_bytes"] == report.path.stat().st_size
        assert set(entry["parity"]) == {"images", "max_abs_diff", "top1_agreement", "accuracy",
                                        "reference_accuracy", "passed"}
    assert manifest["metadata"]["labels"] == ["blue", "green", "red"]
    assert manifest["source"]["sha256"] == manifest["metadata"]["source_sha256"]


def test_no_temporary_files_are_left(artifacts):
    names = sorted(p.name for p in artifacts.out.iterdir())
    assert names == sorted([a.path.name for a in artifacts.artifacts] + ["manifest.json"])
