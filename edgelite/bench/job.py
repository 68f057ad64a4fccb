"""The job a bench worker process measures, and its one serialised form (JSON on stdin)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Optional

from edgelite.errors import OptionError
from edgelite.modes import ModelKind, check_modes


@dataclass(frozen=True)
class WorkerJob:
    """One (model, thread count) measurement, as `python -m edgelite.bench.worker` reads it.

    Attributes:
        kind: "artifact" (a .tflite/.onnx run by edgelite.runtime) or "keras" (a
            checkpoint run by TensorFlow, the baseline).
        path: the model file or SavedModel folder.
        threads: interpreter threads.
        batch: images per timed call.
        runs: timed calls, or None with a `seconds` budget.
        seconds: time budget for the timed calls.
        min_runs: the least number of timed calls under a time budget.
        warmup: untimed calls first.
        data: image folder (one sub-folder per class), or None for random inputs.
        limit: at most this many images of `data`.
        evaluate: predict every image of `data` for accuracy and agreement.
        end_to_end: also time decode + resize + inference of `data` files as they
            are, and the folder rate of `predict_iter`.
    """

    kind: ModelKind
    path: str
    threads: int
    batch: int = 1
    runs: Optional[int] = None
    seconds: Optional[float] = None
    min_runs: int = 5
    warmup: int = 5
    data: Optional[str] = None
    limit: Optional[int] = None
    evaluate: bool = False
    end_to_end: bool = False

    def __post_init__(self) -> None:
        check_modes(self)

    def to_json(self) -> str:
        """The job as one line of JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "WorkerJob":
        """Read a job written by `to_json`; unknown or missing fields are an error."""
        try:
            data = json.loads(text)
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise OptionError(f"unknown bench job field(s): {', '.join(unknown)}")
            return cls(**data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise OptionError(f"not a bench job ({exc})") from None
