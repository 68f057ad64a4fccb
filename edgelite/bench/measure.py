"""Timing loops, latency statistics and memory readings shared by the bench workers.

Only the standard library and numpy: the runtime worker's cold start must not pay
for more.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def time_calls(call: Callable[[np.ndarray], object], inputs: Sequence[np.ndarray], runs: Optional[int],
               seconds: Optional[float], min_runs: int, warmup: int) -> list[float]:
    """Call `call` on `inputs` in turn: `warmup` untimed calls, then timed ones.

    Timed calls stop after `runs` calls, or with `seconds` once the budget is
    spent and at least `min_runs` calls were made.

    Returns:
        The wall time of each timed call, in seconds.
    """
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    samples: list[float] = []
    started = time.perf_counter()
    while True:
        if runs is not None and len(samples) >= runs:
            break
        if seconds is not None and len(samples) >= min_runs and time.perf_counter() - started >= seconds:
            break
        batch = inputs[len(samples) % len(inputs)]
        begin = time.perf_counter()
        call(batch)
        samples.append(time.perf_counter() - begin)
    return samples


def latency_stats(samples: Sequence[float]) -> dict[str, float]:
    """mean, std, min, p50, p90, p95, p99 and max of `samples` (seconds), in milliseconds."""
    ms = np.asarray(samples, dtype=np.float64) * 1000.0
    stats = {"mean": float(ms.mean()), "std": float(ms.std()), "min": float(ms.min())}
    for q, value in zip(PERCENTILES, np.percentile(ms, PERCENTILES)):
        stats[f"p{q}"] = float(value)
    stats["max"] = float(ms.max())
    return stats


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB."""
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Highest resident memory this process has had, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
