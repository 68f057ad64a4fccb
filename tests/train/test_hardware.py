"""Device and strategy selection, as far as one CPU machine can test it."""

import json
import os
import socket
import subprocess
import sys

import pytest

from edgelite.errors import OptionError
from edgelite.train import TrainOptions, train
from edgelite.train.hardware import select_hardware

keras = pytest.importorskip("keras")


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_cpu_only_uses_the_default_strategy_without_mixed_precision(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    hardware = select_hardware("auto")
    assert hardware.description == "CPU (TensorFlow sees no GPU)"
    assert not hardware.mixed_precision and hardware.replicas == 1
    assert keras.mixed_precision.global_policy().name == "float32"


def test_mixed_precision_on_sets_the_policy(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    hardware = select_hardware("on")
    assert hardware.mixed_precision
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert hardware.description.endswith("mixed precision float16")


def test_bad_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(OptionError, match="TF_CONFIG is set but is not valid JSON"):
        select_hardware("auto")


def test_multi_worker_strategy_from_tf_config_on_one_machine(color_data, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}}
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "edgelite", "train", "scratch", "--data", str(color_data), "--out", str(out),
         "--epochs", "1", "--size", "32", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CONFIG": json.dumps(config)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["devices"].startswith("MultiWorkerMirroredStrategy from TF_CONFIG")
    assert len(report["history"]) == 1


def test_fine_tune_unfreezes_the_top_of_the_base_for_more_epochs(color_data, tmp_path):
    result = train("xception", TrainOptions(data=color_data, out=tmp_path, epochs=1, batch_size=16, verbose=0),
                   {"size": 71, "weights": "none", "inner": 8, "fine_tune": 4, "fine_tune_epochs": 1})
    assert [h["phase"] for h in result.history] == ["train", "fine-tune"]
    model = keras.saving.load_model(tmp_path / "resume.keras")
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    trainable = [layer for layer in base.layers if layer.trainable_weights]
    assert 0 < len(trainable) <= 4
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
