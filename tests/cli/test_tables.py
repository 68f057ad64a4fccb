"""Tables at 80, 100 and 120 columns: every number whole, every row told apart (issue 17.4)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from edgelite.cli.bench import COLUMNS, E2E_COLUMNS, table_rows
from edgelite.cli.common import PARITY_COLUMNS, artifact_prefix, parity_rows, shared_prefix, table

STEM = "scratch_08_0.702"
ARTIFACTS = [("tflite", "float32"), ("tflite", "float16"), ("tflite", "dynamic"), ("tflite", "int8"),
             ("onnx", "float32"), ("onnx", "int8")]


def bench_rows(end_to_end: bool = False) -> list[dict]:
    """Twelve rows (six artifacts of one checkpoint at 1 and 2 threads) with every figure a real run gives."""
    rows = []
    for i, (fmt, precision) in enumerate(ARTIFACTS):
        for threads in (1, 2):
            p50 = 1.234 * (i + 1) / threads
            rows.append({
                "name": f"{STEM}_{precision}.{fmt}", "threads": threads,
                "backend": "onnxruntime" if fmt == "onnx" else "litert",
                "backend_version": "1.23.2" if fmt == "onnx" else "2.0.2", "size_bytes": 1_234_567 // (i + 1),
                "load_s": 0.0123 * (i + 1), "cold_start_s": 0.0456 * (i + 1),
                "latency_ms": {"p50": p50, "p90": p50 * 1.3, "p99": p50 * 2.1},
                "throughput_ips": 1000.0 / p50, "preprocess_ms": {"p50": 0.87}, "peak_rss_mb": 123.4 + i,
                "rss_growth_mb": 12.0 + i, "accuracy": 0.9333 - 0.01 * i, "agreement": 1.0 if i < 3 else 0.9778,
                **({"end_to_end_ms": {"p50": p50 + 8.5}, "source_megapixels": {"p50": 12.2},
                    "folder_ips": 88.8} if end_to_end else {})})
    rows.append({"name": f"{STEM}_broken.tflite", "threads": 1, "error": "crashed", "size_bytes": 100})
    return rows


def parity_artifacts() -> list[SimpleNamespace]:
    return [SimpleNamespace(path=Path("artifacts") / f"{STEM}_{precision}.{fmt}", format=fmt, precision=precision,
                            size_bytes=1_234_567 // (i + 1), min_runtime="2.13" if fmt == "tflite" else None,
                            parity=SimpleNamespace(max_abs_diff=1.5e-5 * (i + 1), top1_agreement=1.0 - 0.01 * i,
                                                   accuracy=0.9333, passed=i != 5))
            for i, (fmt, precision) in enumerate(ARTIFACTS)]


def render(title: str, columns: list[str], rows: list[list[str]], width: int, keys: int = 1) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    table(title, columns, rows, keys=keys, console=console)
    return console.file.getvalue()


def assert_whole(text: str, rows: list[list[str]], width: int) -> None:
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    lines = text.splitlines()
    for row in rows:
        # The row's name starts a line in each part of a split table; on one of those lines stands each cell.
        own = [line for line in lines if re.match(rf"[│|]\s{re.escape(row[0])}\s", line)]
        assert own, f"{row[0]!r} does not start any line:\n{text}"
        for cell in row[1:]:
            pattern = rf"(?<![\w.%]){re.escape(cell)}(?![\w.%])"
            assert any(re.search(pattern, line) for line in own), f"{cell!r} of {row[0]!r} is not whole:\n{text}"


@pytest.mark.parametrize("width", [80, 100, 120])
@pytest.mark.parametrize("end_to_end", [False, True])
def test_bench_table_keeps_every_number_and_tells_rows_apart(width, end_to_end):
    rows = table_rows(bench_rows(end_to_end), end_to_end)
    names = [row[0] for row in rows]
    assert names[:4] == ["float32.tflite"] * 2 + ["float16.tflite"] * 2
    assert len({(row[0], row[1]) for row in rows}) == len(rows)  # name and threads tell every row apart
    text = render(f"models {STEM}_...; batch 1", COLUMNS + (E2E_COLUMNS if end_to_end else []), rows, width, keys=2)
    assert text.startswith(f"models {STEM}_...; batch 1")
    assert text.count(STEM) == 1  # the shared start is said once, in the title
    assert_whole(text, rows, width)


@pytest.mark.parametrize("width", [80, 100, 120])
def test_convert_table_keeps_every_number_and_name(width):
    artifacts = parity_artifacts()
    rows = parity_rows(artifacts)
    assert artifact_prefix(artifacts) == f"{STEM}_"
    assert [row[0] for row in rows] == [f"{precision}.{fmt}" for fmt, precision in ARTIFACTS]
    assert_whole(render(f"x.keras -> artifacts; artifact names start {STEM}_", PARITY_COLUMNS, rows, width),
                 rows, width)


def test_a_narrow_table_is_one_table_and_a_wide_one_splits():
    rows = table_rows(bench_rows())
    assert render("t", COLUMNS, rows, 200, keys=2).count("┏") == 1
    assert render("t", COLUMNS, rows, 80, keys=2).count("┏") >= 2


@pytest.mark.parametrize("names, prefix", [
    (["m_float16.tflite", "m_float32.tflite"], "m_"),
    (["model.tflite", "model_int8.tflite"], ""),  # 'model' alone would leave an empty name
    (["a.tflite"], ""),
    (["x_int8.tflite", "x_int8.tflite"], ""),
    (["scratch_08_0.702_int8.onnx", "scratch_08_0.702_float32.tflite"], "scratch_08_0.702_"),
])
def test_shared_prefix_stops_at_a_separator(names, prefix):
    assert shared_prefix(names) == prefix
