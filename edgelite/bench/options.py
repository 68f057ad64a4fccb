"""Typed options of `edgelite bench`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgelite.errors import OptionError

DEFAULT_RUNS = 50


@dataclass(frozen=True)
class BenchOptions:
    """How each (artifact, thread count) row is measured.

    Attributes:
        threads: thread counts to measure every artifact at, one fresh process each.
        batch: images per inference call.
        runs: timed inferences per row (exclusive with `seconds`).
        seconds: time budget per row instead of a fixed count; at least `min_runs` are timed.
        warmup: untimed inferences before timing.
        data: folder of images (one sub-folder per class) for accuracy, agreement
            and preprocessing time; without it the inputs are random.
        limit: at most this many images from `data` (a seeded sample).
        reference: a .keras checkpoint (measured with TensorFlow as the baseline
            row) or an artifact; None: the float32 artifact among those benched.
        timeout: seconds one worker process may take before it is stopped.
        min_runs: the least number of timed runs with `seconds`.
        pick: name the fastest artifact within `max_drop` accuracy points of the
            reference (needs `data`); the report carries it in `pick`.
        max_drop: accuracy points the pick may lose against the reference.
        min_agreement: with `pick`, the top-1 agreement with the reference (in
            percent) the pick must also reach; None: no such floor.
        end_to_end: time decode + resize + inference per image on the `data` files
            as they are (with their pixel counts) and the folder rate through
            `Model.predict_iter` (needs `data`).
    """

    threads: tuple[int, ...] = (1,)
    batch: int = 1
    runs: Optional[int] = None
    seconds: Optional[float] = None
    warmup: int = 5
    data: Optional[Path] = None
    limit: Optional[int] = None
    reference: Optional[Path] = None
    timeout: float = 1800.0
    min_runs: int = 5
    pick: bool = False
    max_drop: float = 1.0
    min_agreement: Optional[float] = None
    end_to_end: bool = False

    def __post_init__(self) -> None:
        if not self.threads:
            raise OptionError("no thread count given; expected e.g. --threads 1,2")
        for count in self.threads:
            if count < 1:
                raise OptionError(f"thread counts must be at least 1, got {count}")
        if len(set(self.threads)) != len(self.threads):
            raise OptionError(f"thread counts repeat: {','.join(map(str, self.threads))}")
        if self.batch < 1:
            raise OptionError(f"--batch must be at least 1, got {self.batch}")
        if self.runs is not None and self.seconds is not None:
            raise OptionError("give --runs or --seconds, not both")
        if self.runs is not None and self.runs < 1:
            raise OptionError(f"--runs must be at least 1, got {self.runs}")
        if self.seconds is not None and self.seconds <= 0:
            raise OptionError(f"--seconds must be positive, got {self.seconds}")
        if self.warmup < 0:
            raise OptionError(f"--warmup cannot be negative, got {self.warmup}")
        if self.limit is not None and self.limit < 1:
            raise OptionError(f"--limit must be at least 1, got {self.limit}")
        if self.pick and self.data is None:
            raise OptionError("--pick needs accuracy: pass --data DIR with one sub-folder per class")
        if self.end_to_end and self.data is None:
            raise OptionError("--end-to-end needs real files: pass --data DIR")
        if self.max_drop < 0:
            raise OptionError(f"--max-drop is in accuracy points and cannot be negative, got {self.max_drop}")
        if self.min_agreement is not None and not self.pick:
            raise OptionError("--min-agreement is a condition of --pick: pass --pick too")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 100:
            raise OptionError(f"--min-agreement is a percentage between 0 and 100, got {self.min_agreement:g}")

    @property
    def timed_runs(self) -> Optional[int]:
        """The fixed run count, or None when a time budget applies."""
        if self.seconds is not None:
            return None
        return self.runs if self.runs is not None else DEFAULT_RUNS
