"""The PNG plots at the size they are saved: no text cut off at the edge, no labels on top of each other."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgelite.bench.evaluate import Evaluation, confusion_figure, plot_confusion
from edgelite.bench.report import bench_figure, write_plot

matplotlib = pytest.importorskip("matplotlib")
MARGIN_PX = 3.0
GAP_PX = 4.0  # tick labels closer than this read as one
ARTIFACTS = ["keras", "float32.tflite", "float16.tflite", "dynamic.tflite", "int8.tflite", "float32.onnx", "int8.onnx"]


def saved_texts(figure) -> list:
    """Each visible, non-empty text of the figure with its extent in pixels, drawn at the saved 110 dpi."""
    from matplotlib.text import Text

    figure.set_dpi(110)  # what savefig(dpi=110) draws, measured on the canvas
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    return [(text, text.get_window_extent(renderer)) for text in figure.findobj(Text)
            if text.get_visible() and text.get_text().strip()]


def assert_inside(png: Path) -> None:
    """Nothing is cut off: the saved image's outer pixels are all background."""
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"))
    edge = int(MARGIN_PX)
    for name, strip in (("top", pixels[:edge]), ("bottom", pixels[-edge:]), ("left", pixels[:, :edge]),
                        ("right", pixels[:, -edge:])):
        assert strip.min() > 230, f"something is drawn on the {name} edge of {png.name}"


def assert_apart(boxes: list) -> None:
    for (a, first), (b, second) in itertools.combinations(boxes, 2):
        assert not first.overlaps(second), f"{a.get_text()!r} and {b.get_text()!r} overlap"


def evaluation(name: str, classes: tuple[str, ...]) -> Evaluation:
    matrix = np.ones((len(classes), len(classes)), int) + np.eye(len(classes), dtype=int) * 20
    return Evaluation(name, "data", classes, int(matrix.sum()), 0.873, 2, 1.0, [], matrix.tolist(), [])


@pytest.mark.parametrize("classes", [("outwear", "pants"), ("dress", "hat", "longsleeve", "outwear", "pants",
                                                            "shirt", "shoes", "shorts", "skirt", "t-shirt")])
def test_the_confusion_title_is_whole_inside_the_figure(classes, tmp_path):
    name = "artifacts/xception_mini_12_0.873_float16_weights.tflite"
    figure = confusion_figure(evaluation(name, classes))
    titles = [text.get_text() for text, _ in saved_texts(figure) if "accuracy" in text.get_text()]
    assert titles == ["xception_mini_12_0.873_float16_weights.tflite\naccuracy 87.3% on "
                      f"{len(classes) * (len(classes) + 20)} images"]
    assert_inside(plot_confusion(evaluation(name, classes), tmp_path / "c.png"))


def bench_report(spread: float) -> SimpleNamespace:
    """Fourteen rows as one checkpoint's artifacts give: most at the same accuracy, latencies close together."""
    rng = np.random.default_rng(0)
    rows = []
    for i, name in enumerate(ARTIFACTS):
        fmt = name.rsplit(".", 1)[-1] if "." in name else "keras"
        for threads in (1, 2):
            p50 = (1.5 + spread * i) / threads
            rows.append({"name": f"scratch_03_0.431_{name}" if name != "keras" else "scratch_03_0.431.keras",
                         "threads": threads, "format": fmt, "size_bytes": 4_000_000 // (i + 1),
                         "accuracy": 0.431 if i < 5 else 0.416, "latency_ms": {"p50": p50},
                         "samples_ms": list(rng.lognormal(np.log(p50), 0.2, 200))})
    return SimpleNamespace(rows=rows, options=SimpleNamespace(batch=1), machine={"cpu": "AMD EPYC"})


@pytest.mark.parametrize("spread", [0.2, 40.0])  # latencies from 1 to 3 ms, and from 1 to 250 ms
def test_bench_plot_labels_and_ticks_stand_apart(spread, tmp_path):
    assert_inside(write_plot(bench_report(spread), tmp_path / "b.png"))
    figure = bench_figure(bench_report(spread))
    texts = saved_texts(figure)
    left, right = figure.axes[:2]
    for axis in (left, right):
        low, high = sorted(axis.get_xlim())
        shown = [t for t in axis.get_xticklabels(which="both") if low <= t.get_position()[0] <= high]
        ticks = [(t, box.expanded(1.0, 1.0).padded(GAP_PX)) for t, box in texts if t in shown]
        assert len(ticks) >= 2
        assert all("10^" not in t.get_text() and "times" not in t.get_text() for t, _ in ticks)
        assert_apart(ticks)
    names = [(t, box) for t, box in texts if t.get_text() in ARTIFACTS]
    assert sorted(t.get_text() for t, _ in names) == sorted(ARTIFACTS)  # each artifact named once, in the legend
    assert_apart(names)
    assert_apart([(t, box) for t, box in texts if t in right.get_yticklabels()])
    matplotlib.pyplot.close(figure)
