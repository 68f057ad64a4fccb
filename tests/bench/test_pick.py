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


def test_min_agreement_leaves_out_the_faster_artifact_that_disagrees():
    rows = [dict(row("m_int8.tflite", 20.0, 0.900), agreement=0.97),
            dict(row("m_int8_kept.tflite", 22.0, 0.900), agreement=0.996, float_layers=["block4_sep2"]),
            dict(row("m_float32.tflite", 50.0, 0.900), agreement=1.0)]
    assert pick_fastest(rows, 0.900, 1.0)["name"] == "m_int8.tflite"  # accuracy alone cannot tell them apart
    pick = pick_fastest(rows, 0.900, 1.0, min_agreement=99.5)
    assert (pick["name"], pick["agreement"], pick["float_layers"]) == ("m_int8_kept.tflite", 0.996, ["block4_sep2"])
    assert pick["min_agreement"] == 99.5


def test_no_artifact_reaching_the_agreement_is_an_error_that_says_what_to_do():
    rows = [dict(row("m_int8.tflite", 20.0, 0.900), agreement=0.97), dict(row("m_x.onnx", 9.0, 0.9), agreement=None)]
    with pytest.raises(PickError, match="convert with --min-agreement"):
        pick_fastest(rows, 0.900, 1.0, min_agreement=99.0)


@pytest.mark.parametrize("value", [-1.0, 100.5])
def test_min_agreement_is_a_percentage(value):
    with pytest.raises(OptionError, match="between 0 and 100"):
        pick_fastest(ROWS, 0.9, 1.0, min_agreement=value)
