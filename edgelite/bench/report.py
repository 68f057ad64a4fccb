"""Write a bench report as JSON, CSV and a PNG plot, each by the report rule of `edgelite.atomic`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Union

from edgelite.atomic import ReportTarget, report_file, report_target
from edgelite.bench.runner import BenchReport
from edgelite.errors import missing_dependency

CSV_COLUMNS = ("name", "kind", "format", "precision", "backend", "backend_version", "threads", "batch",
               "size_bytes", "load_s", "first_inference_s", "cold_start_s", "runs", "latency_mean_ms",
               "latency_std_ms", "latency_min_ms", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms",
               "latency_p99_ms", "latency_max_ms", "throughput_ips", "preprocess_p50_ms", "rss_idle_mb",
               "peak_rss_mb", "rss_growth_mb", "accuracy", "agreement", "end_to_end_p50_ms", "source_mp_p50",
               "folder_ips", "loadavg_1m", "error", "path")


def write_json(report: BenchReport, path: Union[Path, ReportTarget]) -> Path:
    """The whole report, per-run latencies included (schema in `edgelite.bench.schema`)."""
    return _write(path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """One row flattened to CSV_COLUMNS (blank where not measured)."""
    flat = {key: row.get(key) for key in CSV_COLUMNS if key in row}
    for stat, value in (row.get("latency_ms") or {}).items():
        flat[f"latency_{stat}_ms"] = value
    flat["preprocess_p50_ms"] = (row.get("preprocess_ms") or {}).get("p50")
    flat["end_to_end_p50_ms"] = (row.get("end_to_end_ms") or {}).get("p50")
    flat["source_mp_p50"] = (row.get("source_megapixels") or {}).get("p50")
    flat["loadavg_1m"] = (row.get("loadavg") or [None])[0]
    return {key: "" if flat.get(key) is None else flat[key] for key in CSV_COLUMNS}


def write_csv(report: BenchReport, path: Union[Path, ReportTarget]) -> Path:
    """One line per row, the latency statistics as columns."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow(csv_row(row))
    return _write(path, text.getvalue().encode())


def _write(path: Union[Path, ReportTarget], content: bytes) -> Path:
    target = path if isinstance(path, ReportTarget) else report_target(Path(path))
    with report_file(target) as handle:
        handle.write(content)
    return target.given


def row_label(row: dict[str, Any], prefix: str = "") -> str:
    """'name x<threads>', without the prefix every model name shares (the checkpoint's stem)."""
    name = row["name"][len(prefix):].lstrip("_.-") if prefix else row["name"]
    return f"{name or row['name']} x{row['threads']}"


def _shared_prefix(rows: list[dict[str, Any]]) -> str:
    import os

    names = [row["name"] for row in rows]
    return os.path.commonprefix(names) if len(set(names)) > 1 else ""


def write_plot(report: BenchReport, path: Union[Path, ReportTarget]) -> Path:
    """Left: accuracy (or agreement) against p50 latency, marker area = file size. Right: latency per row."""
    try:
        import matplotlib
    except ImportError:
        raise missing_dependency("matplotlib", "bench") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import ScalarFormatter

    measured = [row for row in report.rows if not row.get("error") and row.get("samples_ms")]
    prefix = _shared_prefix(measured)
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, max(5.0, 0.32 * len(measured) + 1.5)))
    _scatter(left, measured, prefix)
    if measured:
        right.boxplot([row["samples_ms"] for row in measured], vert=False, showfliers=True,
                      tick_labels=[row_label(row, prefix) for row in measured])
        right.set_xscale("log")
    for axis in (left, right):
        axis.xaxis.set_major_formatter(ScalarFormatter())
    right.set_xlabel("latency per call (ms, log scale)")
    right.set_title("latency distribution")
    right.tick_params(axis="y", labelsize=8)
    figure.suptitle(f"edgelite bench {prefix.rstrip('_.-')}, batch {report.options.batch}, "
                    f"{report.machine.get('cpu', '')}")
    figure.tight_layout()
    target = path if isinstance(path, ReportTarget) else report_target(Path(path))
    with report_file(target) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)
    return target.given


def _scatter(axis, rows: list[dict[str, Any]], prefix: str) -> None:
    metric = "accuracy" if any(r.get("accuracy") is not None for r in rows) else "agreement"
    points = [r for r in rows if r.get(metric) is not None]
    if not points:
        axis.text(0.5, 0.5, "no accuracy: run with --data DIR", ha="center", va="center", transform=axis.transAxes)
        points, metric = rows, None
    largest = max((r.get("size_bytes") or 1 for r in points), default=1)
    colours = {"tflite": "tab:blue", "onnx": "tab:orange", "keras": "tab:green"}
    for row in points:
        y = row[metric] * 100 if metric else 0.0
        size = 30 + 600 * (row.get("size_bytes") or 0) / largest
        axis.scatter(row["latency_ms"]["p50"], y, s=size, alpha=0.5, color=colours.get(row.get("format"), "tab:grey"))
        axis.annotate(row_label(row, prefix), (row["latency_ms"]["p50"], y), fontsize=7, xytext=(4, 4),
                      textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("p50 latency (ms, log scale)")
    axis.set_ylabel(f"top-1 {metric} (%)" if metric else "")
    axis.set_title("accuracy vs latency (marker area = file size; blue TFLite, orange ONNX, green Keras)",
                   fontsize=9)
