"""`edgelite predict` and `edgelite info`: the light runtime from the command line."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
import time
from pathlib import Path
from typing import IO, Iterator, Optional

import click

from edgelite.atomic import ReportTarget, refuse_same_file
from edgelite.cli.common import ProgressBar, human_size, json_line, note, parse_labels, print_json, safe_text, table
from edgelite.cli.reports import REPLACED, check_report
from edgelite.errors import DatasetError, OptionError
from edgelite.modes import Scaling, choices

FORMATS = ("table", "json", "jsonl", "csv")
_SUFFIX_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
IMAGE_COLUMN = 40


def expand_paths(paths: tuple[str, ...], stdin: IO[bytes],
                 unreadable: Optional[dict[str, str]] = None) -> Iterator[object]:
    """Each PATH as given: a file, every image below a folder (sorted), or '-' for stdin.

    Stdin holds either one image (its signature says so) or one path per line;
    a line that is too long or not UTF-8 is one error result, the others are read on.
    A folder below that cannot be read comes in its sorted place, as its own
    path, with the reason in `unreadable` (path -> message): it is an error item.
    """
    from edgelite.runtime.stdin import stdin_sources

    for path in paths:
        if path == "-":
            yield from stdin_sources(stdin)
        elif Path(path).is_dir():
            yield from (str(p) for p in _folder_items(Path(path), {} if unreadable is None else unreadable))
        else:
            yield path


def _folder_items(folder: Path, unreadable: dict[str, str]) -> list[Path]:
    """The images below `folder` and the folders that cannot be read, in one sorted list."""
    from edgelite.runtime.folder import list_images

    found: list[Path] = []

    def remember(sub: Path, message: str) -> None:
        unreadable[str(sub)] = message
        found.append(sub)

    return sorted(list_images(folder, on_unreadable=remember) + found)


def _count(paths: tuple[str, ...]) -> Optional[int]:
    """How many items (images, and folders that cannot be read) the paths hold, or None with stdin among them."""
    if "-" in paths:
        return None
    return sum(len(_folder_items(Path(p), {})) if Path(p).is_dir() else 1 for p in paths)


class _Writer:
    """Writes each result as it comes, in one output format."""

    def __init__(self, out: IO[str], fmt: str, top_k: int, model_name: str, backend: str):
        self.out, self.fmt, self.top_k = out, fmt, top_k
        self.model_name, self.backend = model_name, backend
        self.results: list[dict] = []
        self.errors: list[str] = []
        self.csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None

    def start(self) -> None:
        if self.csv is not None:
            self.csv.writerow(["image"] + [f"{k}_{i + 1}" for i in range(self.top_k) for k in ("label", "score")]
                              + ["error"])
        elif self.fmt == "table":
            header = f"{'image':<{IMAGE_COLUMN}}  " + "  ".join(f"{'#' + str(i + 1):<24}" for i in range(self.top_k))
            self.out.write(f"{safe_text(self.model_name)} ({safe_text(self.backend)})\n{header.rstrip()}\n")

    def write(self, result) -> None:
        if self.fmt == "json":
            if result.ok:
                self.results.append(result.to_dict())
            else:
                self.errors.append(result.error)
            return
        if self.fmt == "jsonl":
            self.out.write(json_line(_spec_dict(result)) + "\n")
        elif self.csv is not None:  # CSV cannot escape: text from files is made terminal-safe, like the table
            cells = [cell for p in result for cell in (safe_text(p.label), f"{p.score:.6f}")]
            self.csv.writerow([safe_text(result.source)] + cells + [""] * (2 * self.top_k - len(cells))
                              + [safe_text(result.error or "")])
        elif result.ok:
            name = safe_text(result.source)
            name = name if len(name) <= IMAGE_COLUMN else "..." + name[-(IMAGE_COLUMN - 3):]
            cells = "  ".join(f"{safe_text(p.label)[:15] + ' ' + format(p.score, '.4f'):<24}" for p in result)
            self.out.write(f"{name:<{IMAGE_COLUMN}}  {cells}".rstrip() + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.fmt == "json":
            self.out.write(json.dumps({"model": self.model_name, "backend": self.backend, "results": self.results,
                                       "errors": self.errors}, indent=2) + "\n")


def _spec_dict(result) -> dict:
    """One JSON Lines record: {"image", "predictions": [{"label", "score"}]} or {"image", "error"}."""
    data = result.to_dict()
    data.pop("notes", None)
    return data


@contextlib.contextmanager
def _output(target: Optional[ReportTarget]) -> Iterator[IO[str]]:
    """stdout, or the --out report (a regular file is replaced only when every image was handled)."""
    if target is None:
        yield click.get_text_stream("stdout")
        return
    from edgelite.atomic import report_file

    with report_file(target, "w", "--out") as handle:
        yield handle


@click.command("predict")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("paths", metavar="PATH...", nargs=-1, required=True)
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1), help="Classes to show per image.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the interpreter.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Images per inference call.")
@click.option("--workers", type=click.IntRange(min=1), help="Threads decoding images ahead [default: up to 4].")
@click.option("--labels", help="Class names as a,b,c or a file (for models without edgelite metadata).")
@click.option("--preprocess", type=click.Choice(choices(Scaling)),
              help="Pixel scaling, for models without edgelite metadata.")
@click.option("--json", "fmt", flag_value="json", help="One JSON document at the end.")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="One JSON object per image, as results come.")
@click.option("--csv", "fmt", flag_value="csv", help="One CSV row per image, as results come.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the output to this file (the format follows .json/.jsonl/.csv, or .parquet with "
                   f"--ray). {REPLACED}")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", metavar="[ADDRESS]",
              help="Run on a Ray cluster (pip install 'edgelite[ray]'): HOST:PORT, auto, or nothing for "
                   "RAY_ADDRESS or a local Ray. Put it after the PATHs. --threads is per actor.")
def predict_command(model_path: Path, paths: tuple[str, ...], top_k: int, threads, batch_size: int, workers,
                    labels, preprocess, fmt: Optional[str], out: Optional[Path], ray_address: Optional[str]) -> None:
    """Classify images with a .tflite or .onnx artifact.

    PATH is an image file, a folder (every image below it, recursively), or -
    for stdin: an image piped in (JPEG, PNG, GIF, BMP, WebP or TIFF, told by
    its first bytes) or one path per line. Results stream as they come: a table,
    or with --jsonl one JSON object per image ({"image", "predictions"} or
    {"image", "error"}), or --csv. An edgelite artifact carries its labels,
    input size and preprocessing, so no other flag is needed. Images that
    cannot be read are reported and counted, the others are classified, and
    the exit code is then 1.

    \b
    Example:
      edgelite predict artifacts/model_int8.tflite photo.jpg other.png --top-k 3
      edgelite predict artifacts/model_int8.onnx photos/ --jsonl --out results.jsonl
      find photos -name '*.jpg' | edgelite predict model.tflite - --csv > results.csv
      cat photo.jpg | edgelite predict model.tflite -
      edgelite predict /shared/model.tflite /shared/photos --out results.parquet --ray 10.0.0.1:6379
    """
    from edgelite.runtime import load
    from edgelite.runtime.folder import looked_for

    target = check_report(out, "--out", [model_path], [Path(p) for p in paths if p != "-"])
    model = load(model_path, threads=threads, labels=parse_labels(labels), scaling=preprocess)
    top_k = min(top_k, len(model.labels))  # a 2-class model has no third class to show or write
    fmt = fmt or (_SUFFIX_FORMATS.get(out.suffix.lower(), "table") if out is not None else "table")
    if fmt == "parquet" and ray_address is None:
        raise OptionError(f"{out}: Parquet output is written by --ray runs; use .jsonl, .csv or .json here")
    total = _count(paths)
    if total == 0:
        raise DatasetError(f"no images found in {', '.join(paths)} "
                           f"(looked for {looked_for()})")
    show_progress = sys.stderr.isatty() and (out is not None or not sys.stdout.isatty())
    failed = done = 0
    started = time.perf_counter()
    with _output(target) as stream, (ProgressBar(unit="images") if show_progress else contextlib.nullcontext()) as bar:
        unreadable: dict[str, str] = {}
        sources = expand_paths(paths, click.get_binary_stream("stdin"), unreadable)
        if ray_address is not None:  # the same results, from actors on a Ray cluster
            from edgelite.integrations.ray import ParquetWriter, RayOptions, predict_on_ray

            results = predict_on_ray(model_path, sources, RayOptions(top_k, batch_size, threads=threads or 1,
                                     labels=parse_labels(labels), scaling=preprocess), ray_address or None)
        else:
            results = model.predict_iter(sources, top_k, batch_size=batch_size, workers=workers)
        writer = ParquetWriter(stream.buffer) if fmt == "parquet" else _Writer(stream, fmt, top_k, model_path.name,
                                                                               model.backend_name)
        writer.start()
        for result in results:
            done += 1
            if not result.ok and result.source in unreadable:  # a folder: say why it was not read
                result.error = unreadable[result.source]
            if target is not None and "-" in paths:  # paths read from stdin are checked as they come
                refuse_same_file(target, "--out", "an input", [Path(result.source)])
            for message in result.notes:
                note(message)
            if not result.ok:
                failed += 1
                click.echo(f"error: {safe_text(result.error or '')}", err=True)
            writer.write(result)
            if bar is not None:
                bar("predicting", done, total or 0)
        writer.finish()
    if out is not None:
        click.echo(_summary(done, failed, time.perf_counter() - started, out), err=True)
    for message in model.assumptions:
        note(message)
    if failed:
        if done > 1:
            click.echo(f"error: {failed} of {done} images could not be read", err=True)
        raise click.exceptions.Exit(1)


def _summary(done: int, failed: int, seconds: float, out: Path) -> str:
    """The line `predict --out` ends with: what was done, how fast, and where it went."""
    errors = f"{failed} error{'s' if failed != 1 else ''}"
    rate = done / seconds if seconds > 0 else 0.0
    return (f"{done} image{'s' if done != 1 else ''}, {errors}, {seconds:.1f} s ({rate:.1f} images/s); "
            f"written to {safe_text(out)}")


@click.command("info")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_command(model_path: Path, as_json: bool) -> None:
    """Describe an artifact: tensors, dtypes, quantization, metadata, ops, size, backend.

    \b
    Example:
      edgelite info artifacts/model_int8.tflite --json
    """
    from edgelite.runtime.describe import describe

    info = describe(model_path)
    if as_json:
        print_json(info)
        return
    rows = [["file", info["file"]], ["size", human_size(info["size_bytes"])], ["backend", info["backend"]]]
    for kind in ("inputs", "outputs"):
        for tensor in info[kind]:
            quant = f" scale={tensor['scale']:.6g} zero_point={tensor['zero_point']}" if tensor["scale"] else ""
            rows.append([kind[:-1], f"{tensor['name']} {tensor['shape']} {tensor['dtype']}{quant}"])
    meta = info["metadata"]
    if meta:
        for key in ("precision", "labels", "input_height", "input_width", "channel_order", "input_scaling",
                    "graph_scaling", "interpolation", "decode", "output_kind", "source_sha256", "edgelite_version"):
            value = ", ".join(meta[key]) if key == "labels" else meta[key]
            rows.append([key, value])
    else:
        rows.append(["metadata", "none (not written by edgelite)"])
    check = info.get("manifest")
    rows.append(["manifest", f"size and sha256 {check['sha256'][:16]}... match {Path(check['manifest']).name}"
                 if check else "none lists this file (not checked)"])
    if "operators" in info:
        rows.append(["operators", ", ".join(f"{o['name']} v{o['version']}" for o in info["operators"])])
    if info.get("min_runtime"):
        rows.append(["min runtime", info["min_runtime"]])
    table(None, ["field", "value"], rows)


COMMANDS = [predict_command, info_command]
