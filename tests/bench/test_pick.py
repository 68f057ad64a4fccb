import pytest

from edgelite.bench.pick import pick_fastest
from edgelite.errors import PickError
from edgelite.errors import OptionError


def row(name, p50, accuracy, kind="artifact", threads=1, error=None, size=100):
    return {"name": name, "path": f"/m/{name}", "kind": kind, "threads": threads, "size_bytes": size,
            "latency_ms": {"p50": p50}, "accuracy": accuracy, "error": error}


ROWS = [
    row("m.keras", 1.0, 0.900, kind="keras"),          # the fastest, but the baseline is never picked
    row("m_float32.tflite", 50.0, 0.900),
    row("m_int8.tflite", 20.0, 0.880),                  # 2 points below: out at max-drop 1
    row("m_dynamic.tflite", 30.0, 0.895),
    row("m_float16.tflite", 25.0, 0.893, threads=2),
    row("m_broken.onnx", 5.0, None, error="worker killed by SIGSEGV"),
]


@pytest.mark.parametrize("max_drop, expected", [
    (1.0, ("m_float16.tflite", 2)),
    (0.0, ("m_float32.tflite", 1)),
    (0.6, ("m_dynamic.tflite", 1)),
    (2.0, ("m_int8.tflite", 1)),
])
def test_pick_is_the_fastest_within_the_budget(max_drop, expected):
    pick = pick_fastest(ROWS, 0.900, max_drop)
    assert (pick["name"], pick["threads"]) == expected
    assert pick["min_accuracy"] == pytest.approx(0.900 - max_drop / 100)


def test_pick_breaks_latency_ties_by_size():
    rows = [row("big.tflite", 10.0, 0.9, size=1000), row("small.tflite", 10.0, 0.9, size=10)]
    assert pick_fastest(rows, 0.9, 1.0)["name"] == "small.tflite"


def test_nothing_within_the_budget_is_an_error():
    with pytest.raises(PickError, match=r"no artifact reaches 94\.0% top-1 accuracy"):
        pick_fastest(ROWS, 0.950, 1.0)


def test_pick_needs_a_reference_accuracy():
    with pytest.raises(OptionError, match="--pick needs the reference's accuracy"):
        pick_fastest(ROWS, None, 1.0)


def test_negative_budget_is_rejected():
    with pytest.raises(OptionError, match="cannot be negative"):
        pick_fastest(ROWS, 0.9, -1.0)
