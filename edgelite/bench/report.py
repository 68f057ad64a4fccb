"""Write a bench report as JSON, CSV and a PNG plot, each by the report rule of `edgelite.atomic`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Union

from edgelite.atomic import ReportTarget, report_file, report_target
from edgelite.bench.runner import BenchReport
from edgelite.bench.figures import pyplot, save_png

CSV_COLUMNS = ("name", "kind", "format", "precision", "float_layers", "backend", "backend_version", "threads", "batch",
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
    flat["float_layers"] = ";".join(row.get("float_layers") or []) or None
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
    return save_png(bench_figure(report), path)


def bench_figure(report: BenchReport):
    """The figure `write_plot` saves (a matplotlib Figure; close it with `plt.close`)."""
    plt = pyplot()

    measured = [row for row in report.rows if not row.get("error") and row.get("samples_ms")]
    prefix = _shared_prefix(measured)
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, max(5.0, 0.32 * len(measured) + 1.5)),
                                         layout="constrained")
    _scatter(left, measured, prefix)
    if measured:
        right.boxplot([row["samples_ms"] for row in measured], vert=False, showfliers=True,
                      tick_labels=[row_label(row, prefix) for row in measured])
        right.set_xscale("log")
    for axis in (left, right):
        _plain_log_ticks(axis)
    right.set_xlabel("latency per call (ms, log scale)")
    right.set_title("latency distribution")
    right.tick_params(axis="y", labelsize=8)
    figure.suptitle(f"edgelite bench {prefix.rstrip('_.-')}, batch {report.options.batch}, "
                    f"{report.machine.get('cpu', '')}")
    return figure


def _plain_log_ticks(axis) -> None:
    """Log-scale x ticks at 1-2-5 steps written as plain numbers (no 2x10^0), and no minor labels to collide."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if axis.get_xscale() != "log":
        return
    axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())


def _scatter(axis, rows: list[dict[str, Any]], prefix: str) -> None:
    """One colour per model file and one marker shape per thread count, named in a legend: points at the
    same accuracy and latency (the usual case for artifacts of one checkpoint) cannot hide their names."""
    from matplotlib.lines import Line2D

    metric = "accuracy" if any(r.get("accuracy") is not None for r in rows) else "agreement"
    points = [r for r in rows if r.get(metric) is not None]
    if not points:
        axis.text(0.5, 0.5, "no accuracy: run with --data DIR", ha="center", va="center", transform=axis.transAxes)
        points, metric = rows, None
    largest = max((r.get("size_bytes") or 1 for r in points), default=1)
    names = list(dict.fromkeys(r["name"] for r in points))
    threads = sorted({r["threads"] for r in points})
    palette = [f"C{i}" for i in range(10)]
    shapes = "os^Dv<>ph8"
    colour = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    shape = {count: shapes[i % len(shapes)] for i, count in enumerate(threads)}
    for row in points:
        y = row[metric] * 100 if metric else 0.0
        size = 30 + 600 * (row.get("size_bytes") or 0) / largest
        axis.scatter(row["latency_ms"]["p50"], y, s=size, alpha=0.55, color=colour[row["name"]],
                     marker=shape[row["threads"]], edgecolors="black", linewidths=0.5)
    axis.set_xscale("log")
    axis.margins(x=0.08, y=0.12)  # the largest markers stay inside the frame
    axis.set_xlabel("p50 latency (ms, log scale)")
    axis.set_ylabel(f"top-1 {metric} (%)" if metric else "")
    axis.set_title("accuracy vs latency (marker area = file size)", fontsize=10)
    handles = [Line2D([], [], linestyle="", marker="o", markersize=8, color=colour[name],
                      label=name[len(prefix):].lstrip("_.-") or name) for name in names]
    if len(threads) > 1:
        handles += [Line2D([], [], linestyle="", marker=shape[count], markersize=8, color="grey",
                           label=f"{count} thread{'s' if count > 1 else ''}") for count in threads]
    axis.legend(handles=handles, fontsize=8, loc="best", framealpha=0.85)
