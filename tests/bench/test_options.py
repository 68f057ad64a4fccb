import pytest

from edgelite.bench.options import DEFAULT_RUNS, BenchOptions
from edgelite.errors import OptionError


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": ()}, "no thread count"),
    ({"threads": (0,)}, "thread counts must be at least 1, got 0"),
    ({"threads": (1, 1)}, "thread counts repeat: 1,1"),
    ({"batch": 0}, "--batch must be at least 1"),
    ({"runs": 5, "seconds": 1.0}, "give --runs or --seconds, not both"),
    ({"seconds": 0.0}, "--seconds must be positive"),
    ({"warmup": -1}, "--warmup cannot be negative"),
    ({"limit": 0}, "--limit must be at least 1"),
])
def test_bad_options_are_rejected(kwargs, message):
    with pytest.raises(OptionError, match=message):
        BenchOptions(**kwargs)


def test_runs_default_and_seconds_budget():
    assert BenchOptions().timed_runs == DEFAULT_RUNS
    assert BenchOptions(seconds=2.0).timed_runs is None
    assert BenchOptions(runs=3).timed_runs == 3


def test_min_agreement_belongs_to_pick_and_is_a_percentage(tmp_path):
    with pytest.raises(OptionError, match="condition of --pick"):
        BenchOptions(data=tmp_path, min_agreement=99.0)
    with pytest.raises(OptionError, match="between 0 and 100"):
        BenchOptions(data=tmp_path, pick=True, min_agreement=101.0)
    assert BenchOptions(data=tmp_path, pick=True, min_agreement=99.5).min_agreement == 99.5
