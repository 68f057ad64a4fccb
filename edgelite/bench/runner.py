"""Run every (model, thread count) of a benchmark in its own worker process and gather the rows."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from edgelite import __version__
from edgelite.bench.job import WorkerJob
from edgelite.bench.machine import machine_info, versions
from edgelite.bench.options import BenchOptions
from edgelite.bench.pick import pick_fastest
from edgelite.bench.schema import SCHEMA_VERSION
from edgelite.errors import OptionError, PickError
from edgelite.isolated import child_environment, python_module_command
from edgelite.modes import ModelKind, Progress, no_progress
from edgelite.runtime.metadata import KERAS_SUFFIXES
# What a row inherits from the row of the same model that evaluated the data.
EVALUATED_FIELDS = ("accuracy", "agreement", "eval_images", "labelled_images")


@dataclass
class BenchReport:
    """Everything one `edgelite bench` run measured; `to_dict` is the documented JSON."""

    rows: list[dict[str, Any]]
    options: BenchOptions
    machine: dict[str, Any]
    versions: dict[str, str]
    reference: Optional[dict[str, Any]] = None
    pick: Optional[dict[str, Any]] = None
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """The report as JSON-ready data; `samples=False` leaves out the per-run latencies."""
        opts = self.options
        rows = [row if samples else {k: v for k, v in row.items() if k != "samples_ms"} for row in self.rows]
        return {
            "schema": SCHEMA_VERSION, "edgelite_version": __version__, "created": self.created,
            "machine": self.machine, "versions": self.versions,
            "options": {"threads": list(opts.threads), "batch": opts.batch, "runs": opts.timed_runs,
                        "seconds": opts.seconds, "warmup": opts.warmup,
                        "data": str(opts.data) if opts.data else None, "limit": opts.limit,
                        "reference": str(opts.reference) if opts.reference else None,
                        "end_to_end": opts.end_to_end},
            "reference": self.reference, "pick": self.pick, "notes": self.notes, "rows": rows,
        }

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Rows whose measurement failed."""
        return [row for row in self.rows if row.get("error")]


def is_keras_checkpoint(path: Path) -> bool:
    """True for a file or folder `edgelite convert` would read as a Keras checkpoint."""
    path = Path(path)
    return path.suffix.lower() in KERAS_SUFFIXES or (path.is_dir() and (path / "saved_model.pb").is_file())


def model_kind(path: Path) -> ModelKind:
    """'keras' for a checkpoint, 'artifact' for anything else (the runtime says if it cannot load it)."""
    return "keras" if is_keras_checkpoint(Path(path)) else "artifact"


def job_for(path: Path, kind: ModelKind, threads: int, options: BenchOptions, evaluate: bool) -> WorkerJob:
    """The job one worker process measures."""
    return WorkerJob(kind=kind, path=str(path), threads=threads, batch=options.batch, runs=options.timed_runs,
                     seconds=options.seconds, min_runs=options.min_runs, warmup=options.warmup,
                     data=str(options.data) if options.data else None, limit=options.limit, evaluate=evaluate,
                     end_to_end=options.end_to_end)


def run_worker(job: WorkerJob, timeout: float) -> dict[str, Any]:
    """Measure one job in a fresh Python process; any failure comes back as a row with `error`."""
    env = child_environment(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    begin = time.perf_counter()
    try:  # an isolated path: a folder named edgelite/ in the working folder is never imported
        done = subprocess.run(python_module_command("edgelite.bench.worker"), input=job.to_json(),
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "process_wall_s": time.perf_counter() - begin}
    wall = time.perf_counter() - begin
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        row = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        row = None
    if done.returncode != 0 or not isinstance(row, dict):
        row = {"error": _crash_message(done.returncode, done.stderr)}
    row["process_wall_s"] = wall
    return row


def _crash_message(code: int, stderr: str) -> str:
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    return f"worker {how}" + (f": {last[:300]}" if last else "")


def _size(path: Path) -> Optional[int]:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return None


def run_bench(artifacts: Sequence[Path], options: BenchOptions, progress: Progress = no_progress) -> BenchReport:
    """Measure every artifact (and the Keras reference, if given) at every thread count.

    Each row is measured in its own process; a model that fails to load, run or
    even crashes its process yields a row with `error` and the others go on.
    With `options.data`, each model predicts the images once (at the largest
    thread count) for accuracy and agreement with the reference. With
    `options.pick`, the report's `pick` names the fastest artifact within the
    accuracy budget, or carries the `error` saying why none is.
    """
    models: list[tuple[Path, str]] = []
    notes: list[str] = []
    reference = Path(options.reference) if options.reference is not None else None
    if reference is not None and model_kind(reference) == "keras" and importlib.util.find_spec("tensorflow") is None:
        notes.append(f"TensorFlow is not installed: no Keras baseline row for {reference.name}, and agreement is "
                     "with the float32 artifact (pip install 'edgelite[convert]' for the baseline)")
        reference = None
    if reference is not None:
        models.append((reference, model_kind(reference)))
    for path in artifacts:
        if (Path(path), "artifact") not in models:
            models.append((Path(path), "artifact"))
    # Predictions do not depend on the thread count: the data is predicted once per model, at the most threads.
    jobs = [(path, kind, threads, threads == max(options.threads)) for path, kind in models
            for threads in options.threads]
    machine = machine_info()
    rows = []
    for done, (path, kind, threads, evaluate) in enumerate(jobs):
        progress(f"{path.name} x{threads}", done, len(jobs))
        row = {"name": path.name, "path": str(path), "kind": kind, "threads": threads, "batch": options.batch,
               "size_bytes": _size(path), "error": None}
        row.update(run_worker(job_for(path, kind, threads, options, evaluate and options.data is not None),
                              options.timeout))
        rows.append(row)
    progress("done", len(jobs), len(jobs))
    machine["loadavg_end"] = list(os.getloadavg())
    compared = _compare_with_reference(rows, reference)
    report = BenchReport(rows, options, machine, versions(), compared, notes=notes)
    if options.pick:
        try:
            report.pick = pick_fastest(rows, (compared or {}).get("accuracy"), options.max_drop,
                                       options.min_agreement)
        except (PickError, OptionError) as exc:  # no accuracy to compare: said in the report, not raised
            report.pick = {"max_drop": options.max_drop, "name": None, "error": str(exc)}
    return report


def find_reference(rows: list[dict[str, Any]], reference: Optional[Path]) -> Optional[dict[str, Any]]:
    """The evaluated row predictions are compared with: `reference`, else the float32 artifact."""
    evaluated = [row for row in rows if "predicted" in row and not row.get("error")]
    if reference is not None:
        wanted = str(reference)
        return next((row for row in evaluated if row["path"] == wanted), None)
    float32 = [row for row in evaluated if row.get("precision") == "float32"]
    float32.sort(key=lambda row: row.get("format") != "tflite")  # the TFLite float32 first, then ONNX
    return float32[0] if float32 else None


def _compare_with_reference(rows: list[dict[str, Any]], wanted: Optional[Path]) -> Optional[dict[str, Any]]:
    """Fill in top-1 agreement with the reference; copy evaluated figures to the other thread counts."""
    reference = find_reference(rows, wanted)
    if reference is not None:
        expected = dict(zip(reference["images"], reference["predicted"]))
        for row in rows:
            if "predicted" in row and not row.get("error"):
                same = [expected[image] == label for image, label in zip(row["images"], row["predicted"])
                        if image in expected]
                row["agreement"] = sum(same) / len(same) if same else None
    evaluated = {row["path"]: row for row in rows if "predicted" in row}
    for row in rows:
        source = evaluated.get(row["path"])
        if row.get("error") or source is None:
            continue
        for key in EVALUATED_FIELDS:
            row.setdefault(key, source.get(key))
    for row in rows:
        for key in EVALUATED_FIELDS:
            row.setdefault(key, None)
        row.pop("images", None)
        row.pop("predicted", None)
    if reference is None:
        return None
    return {"name": reference["name"], "path": reference["path"], "kind": reference["kind"],
            "accuracy": reference.get("accuracy")}
