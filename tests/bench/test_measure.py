import numpy as np
import pytest

from edgelite.bench.measure import latency_stats, time_calls
from edgelite.runtime.scores import accuracy, top1
from edgelite.bench.schema import STAT_KEYS


def test_latency_stats_are_ordered_and_in_milliseconds():
    samples = list(np.random.default_rng(0).exponential(0.01, 500))
    stats = latency_stats(samples)
    assert tuple(stats) == STAT_KEYS
    assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    assert stats["mean"] == pytest.approx(np.mean(samples) * 1000)


def test_time_calls_counts_runs_after_warmup():
    calls = []
    samples = time_calls(calls.append, [np.zeros(1), np.ones(1)], runs=7, seconds=None, min_runs=1, warmup=3)
    assert len(samples) == 7 and len(calls) == 10


def test_time_calls_with_a_budget_makes_at_least_min_runs():
    samples = time_calls(lambda x: None, [np.zeros(1)], runs=None, seconds=1e-9, min_runs=4, warmup=0)
    assert len(samples) == 4


@pytest.mark.parametrize("predicted, truth, expected", [
    ([0, 1, 2], [0, 1, 1], 2 / 3),
    ([0, 1, 2], [-1, 1, -1], 1.0),
    ([0, 1], [-1, -1], None),
])
def test_accuracy_counts_only_labelled_images(predicted, truth, expected):
    assert accuracy(predicted, truth) == (pytest.approx(expected) if expected is not None else None)


def test_top1_thresholds_a_sigmoid_output():
    assert top1(np.array([[0.2], [0.7]])).tolist() == [0, 1]
    assert top1(np.array([[0.1, 0.9], [0.8, 0.2]])).tolist() == [1, 0]
