"""The course's experiments: train one variant per value of a config field, compare them."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from edgelite.atomic import write_bytes_atomic
from edgelite.errors import OptionError
from edgelite.modes import Progress, no_progress
from edgelite.train.data import scan_dataset
from edgelite.train.loop import TrainOptions, TrainResult, train
from edgelite.train.plots import plot_variants
from edgelite.train.registry import get_family


@dataclass
class SweepResult:
    """Each variant's run and the winner."""

    parameter: str
    results: list[tuple[Any, TrainResult]]
    plot: Optional[Path]

    @property
    def winner(self) -> tuple[Any, TrainResult]:
        return max(self.results, key=lambda item: item[1].best_val_accuracy)


def parse_sweep(text: str, config: Any) -> tuple[str, list[Any]]:
    """'lr=0.0001,0.001' -> ('lr', [0.0001, 0.001]), typed like the config field."""
    name, _, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not hasattr(config, name) or not raw:
        raise OptionError(f"--sweep takes FIELD=V1,V2,... with a field of {type(config).__name__}, got {text!r}")
    kind = type(getattr(config, name))
    try:
        values = [kind(v.strip()) for v in raw.split(",") if v.strip()]
    except ValueError:
        raise OptionError(f"--sweep {name}: every value must be a {kind.__name__}") from None
    if len(values) < 2:
        raise OptionError(f"--sweep {name}: give at least two values to compare")
    return name, values


def sweep(family_name: str, parameter: str, values: Sequence[Any], options: TrainOptions,
          overrides: Optional[dict] = None, log: Callable[[str], None] = lambda m: None,
          progress: Progress = no_progress) -> SweepResult:
    """Train a variant per value in options.out/<parameter>_<value>/, then table, plot and winner.

    The dataset is scanned once for every variant; with `options.cache`, images decoded for the
    first variant are read back by the others (at the same size).
    """
    family = get_family(family_name)
    family.configure(**(overrides or {}))  # unknown options fail before anything is read
    dataset = scan_dataset(options.data, options.val_split, options.seed, options.classes, progress)
    results = []
    for value in values:
        log(f"--- {parameter} = {value}")
        run_options = replace(options, out=Path(options.out) / f"{parameter}_{value}")
        result = train(family_name, run_options, {**(overrides or {}), parameter: value}, dataset, log)
        results.append((value, result))
    curves = {f"{parameter}={v}": [h.get("val_accuracy", 0.0) for h in r.history] for v, r in results}
    plot = Path(options.out) / f"sweep_{parameter}.png"
    drawn = plot_variants(curves, plot, f"{family_name}: validation accuracy by {parameter}")
    outcome = SweepResult(parameter, results, plot if drawn else None)
    summary = {"family": family_name, "parameter": parameter, "winner": outcome.winner[0],
               "variants": [{"value": v, "best_val_accuracy": r.best_val_accuracy, "best_epoch": r.best_epoch,
                             "checkpoint": str(r.best_checkpoint) if r.best_checkpoint else None,
                             "curve": curves[f"{parameter}={v}"]} for v, r in results]}
    write_bytes_atomic(Path(options.out) / f"sweep_{parameter}.json", (json.dumps(summary, indent=2) + "\n").encode())
    return outcome
