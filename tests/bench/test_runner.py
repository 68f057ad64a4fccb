"""run_bench end to end on tiny models: each row in its own process, errors as rows."""

import json

import pytest

from edgelite.bench import BenchOptions, run_bench
from edgelite.bench.runner import _crash_message, job_for, run_worker
from edgelite.bench.schema import ERROR_ROW_KEYS, ROW_KEYS, STAT_KEYS, TOP_LEVEL_KEYS


@pytest.fixture(scope="module")
def report(bench_models, bench_data):
    paths = [bench_models[k] for k in ("tflite_float32", "tflite_int8", "onnx_float32", "garbage")]
    return run_bench(paths, BenchOptions(threads=(1, 2), runs=15, warmup=2, data=bench_data))


def good(report):
    return [row for row in report.rows if not row["error"]]


def test_every_artifact_and_thread_count_is_a_row(report):
    assert [(row["name"], row["threads"]) for row in report.rows] == [
        (name, t) for name in ("tiny_float32.tflite", "tiny_int8.tflite", "tiny_float32.onnx", "garbage.tflite")
        for t in (1, 2)]


def test_json_has_every_documented_key(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert tuple(data) == TOP_LEVEL_KEYS
    assert data["schema"] == "edgelite.bench/1"
    for row in data["rows"]:
        expected = ERROR_ROW_KEYS if row["error"] else ROW_KEYS
        assert set(expected) <= set(row), set(expected) - set(row)
        if not row["error"]:
            assert tuple(row["latency_ms"]) == STAT_KEYS
            assert tuple(row["preprocess_ms"]) == STAT_KEYS
    assert {"cpu", "cpu_flags", "logical_cpus", "loadavg", "loadavg_end", "python"} <= set(data["machine"])
    assert {"numpy", "ai-edge-litert", "onnxruntime"} <= set(data["versions"])


def test_numbers_are_consistent(report):
    for row in good(report):
        lat = row["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert row["runs"] == 15 == len(row["samples_ms"])
        # batch 1: throughput is the inverse of the mean latency
        assert row["throughput_ips"] == pytest.approx(1000.0 / lat["mean"], rel=0.01)
        assert 0 < row["load_s"] < row["cold_start_s"]
        assert row["first_inference_s"] < row["cold_start_s"]
        assert row["peak_rss_mb"] >= row["rss_idle_mb"] > 0
        assert row["rss_growth_mb"] == pytest.approx(row["peak_rss_mb"] - row["rss_idle_mb"])
        assert row["input"]["source"] == "data" and row["preprocess_source"] == "data"
        assert row["eval_images"] == row["labelled_images"] == 12
        assert 0.0 <= row["accuracy"] <= 1.0


def test_agreement_is_with_the_float32_tflite_by_default(report):
    assert report.reference["name"] == "tiny_float32.tflite"
    rows = {(row["name"], row["threads"]): row for row in good(report)}
    assert rows["tiny_float32.tflite", 1]["agreement"] == 1.0
    assert rows["tiny_float32.onnx", 2]["agreement"] == 1.0
    # predicted once per model, at the most threads; copied to the other thread counts
    assert rows["tiny_int8.tflite", 1]["accuracy"] == rows["tiny_int8.tflite", 2]["accuracy"]


def test_garbage_model_is_an_error_row_and_the_others_finish(report):
    assert [row["name"] for row in report.failed] == ["garbage.tflite"] * 2
    assert "ModelFileError" in report.failed[0]["error"]
    assert len(good(report)) == 6


def test_backends_and_precisions_come_from_the_files(report):
    rows = {row["name"]: row for row in good(report)}
    assert rows["tiny_int8.tflite"]["precision"] == "int8"
    assert rows["tiny_int8.tflite"]["input"]["dtype"] == "uint8"
    assert rows["tiny_float32.onnx"]["backend"] == "onnxruntime"
    assert rows["tiny_float32.tflite"]["format"] == "tflite"


def test_a_file_without_metadata_gets_random_inputs(bench_models):
    report = run_bench([bench_models["plain"]], BenchOptions(runs=3, warmup=0))
    row = report.rows[0]
    assert row["error"] is None
    assert row["input"]["source"] == "random" and row["input"]["shape"] == [-1, 24, 24, 3]
    assert row["precision"] is None and row["accuracy"] is None
    assert row["preprocess_source"] == "synthetic 640x480 JPEG"
    assert any("no labels" in message for message in row["assumptions"])


def test_keras_reference_is_a_baseline_row(bench_models, bench_data):
    options = BenchOptions(runs=3, warmup=1, data=bench_data, reference=bench_models["keras"])
    report = run_bench([bench_models["tflite_float32"]], options)
    keras_row, tflite_row = report.rows
    assert keras_row["kind"] == "keras" and keras_row["backend"] == "tensorflow" and keras_row["error"] is None
    assert report.reference["kind"] == "keras"
    assert keras_row["agreement"] == 1.0 and tflite_row["agreement"] == 1.0
    assert keras_row["accuracy"] == tflite_row["accuracy"]


def test_a_worker_past_its_timeout_is_an_error_row(bench_models):
    job = job_for(bench_models["tflite_float32"], "artifact", 1, BenchOptions(runs=1), False)
    assert run_worker(job, timeout=0.01)["error"] == "timed out after 0 s"


@pytest.mark.parametrize("code, stderr, message", [
    (-11, "", "worker killed by SIGSEGV"),
    (1, "Traceback\nMemoryError: out\n", "worker exited with code 1: MemoryError: out"),
])
def test_crash_messages(code, stderr, message):
    assert _crash_message(code, stderr) == message


def test_without_tensorflow_the_keras_row_is_left_out_with_a_note(bench_models, bench_data, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    options = BenchOptions(runs=2, warmup=0, data=bench_data, reference=bench_models["keras"])
    report = run_bench([bench_models["tflite_float32"]], options)
    assert [row["kind"] for row in report.rows] == ["artifact"]
    assert report.reference["name"] == "tiny_float32.tflite"
    assert report.notes == ["TensorFlow is not installed: no Keras baseline row for tiny.keras, and agreement is "
                            "with the float32 artifact (pip install 'edgelite[convert]' for the baseline)"]
