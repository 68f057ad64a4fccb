"""JSON, CSV and PNG output of a bench report, written from crafted rows (no measuring)."""

import csv
import json

import pytest

from edgelite.bench import BenchOptions, BenchReport, write_csv, write_json, write_plot
from edgelite.bench.report import CSV_COLUMNS


def measured(name, fmt, p50, accuracy, size):
    stats = {"mean": p50, "std": 0.1, "min": p50 * 0.9, "p50": p50, "p90": p50 * 1.1, "p95": p50 * 1.2,
             "p99": p50 * 1.3, "max": p50 * 1.5}
    return {"name": name, "path": f"/m/{name}", "kind": "artifact", "format": fmt, "precision": "float32",
            "threads": 1, "batch": 1, "size_bytes": size, "latency_ms": stats,
            "samples_ms": [p50 * 0.9, p50, p50 * 1.5], "preprocess_ms": dict(stats), "throughput_ips": 1000 / p50,
            "accuracy": accuracy, "agreement": 1.0, "loadavg": [0.5, 0.4, 0.3], "error": None}


@pytest.fixture()
def report():
    rows = [measured("a.tflite", "tflite", 2.0, 0.9, 1000), measured("b.onnx", "onnx", 3.0, 0.91, 4000),
            {"name": "bad.tflite", "path": "/m/bad.tflite", "kind": "artifact", "threads": 1, "batch": 1,
             "size_bytes": 7, "error": "ModelFileError: bad"}]
    return BenchReport(rows, BenchOptions(), {"cpu": "test cpu", "loadavg": [0.1, 0.1, 0.1]}, {"numpy": "2"})


def test_json_round_trips(report, tmp_path):
    data = json.loads(write_json(report, tmp_path / "bench.json").read_text())
    assert data["rows"][0]["samples_ms"] == [1.8, 2.0, 3.0]
    assert data["options"]["runs"] == 50 and data["options"]["threads"] == [1]


def test_csv_has_a_line_per_row_with_flat_latencies(report, tmp_path):
    with open(write_csv(report, tmp_path / "bench.csv")) as handle:
        lines = list(csv.DictReader(handle))
    assert tuple(lines[0]) == CSV_COLUMNS
    assert [line["name"] for line in lines] == ["a.tflite", "b.onnx", "bad.tflite"]
    assert float(lines[1]["latency_p50_ms"]) == 3.0 and lines[1]["loadavg_1m"] == "0.5"
    assert lines[2]["error"] == "ModelFileError: bad" and lines[2]["latency_p50_ms"] == ""


def test_plot_is_a_png_and_leaves_no_temp_file(report, tmp_path):
    path = write_plot(report, tmp_path / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.png"]


def test_plot_without_accuracy_still_draws(report, tmp_path):
    for row in report.rows:
        row["accuracy"] = row["agreement"] = None
    assert write_plot(report, tmp_path / "bench.png").stat().st_size > 0
