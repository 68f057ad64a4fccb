"""`edgelite bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from edgelite.cli.common import ProgressBar, human_size, note, safe_text, shared_prefix, split_list, table
from edgelite.cli.reports import REPLACED, check_report
from edgelite.errors import OptionError, PickError

COLUMNS = ["model", "thr", "backend", "size", "load", "cold", "p50 ms", "p90 ms", "p99 ms", "img/s", "prep ms",
           "peak MB", "+MB", "acc", "agree"]


def _threads(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in split_list(value) or ())
    except ValueError:
        raise OptionError(f"--threads expects a comma list of whole numbers like 1,2,4, got {value!r}") from None


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1%}"


E2E_COLUMNS = ["MP", "e2e ms", "folder img/s"]


def table_rows(rows: list[dict], end_to_end: bool = False) -> list[list[str]]:
    """The final table: one line per (model, threads), errors spelled out.

    Model names leave out the start they all share (`shared_prefix`); the title says it once.
    """
    lines = []
    prefix = shared_prefix([row["name"] for row in rows])
    for row in rows:
        if row.get("error"):
            lines.append([row["name"][len(prefix):], str(row["threads"]), "failed", human_size(row["size_bytes"] or 0),
                          *["-"] * (11 + (len(E2E_COLUMNS) if end_to_end else 0))])
            continue
        lat = row["latency_ms"]
        lines.append([
            row["name"][len(prefix):], str(row["threads"]), f"{row['backend']} {row['backend_version']}",
            human_size(row["size_bytes"] or 0), f"{row['load_s']:.2f}s", f"{row['cold_start_s']:.2f}s",
            f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{row['throughput_ips']:.1f}",
            f"{row['preprocess_ms']['p50']:.2f}", f"{row['peak_rss_mb']:.0f}", f"{row['rss_growth_mb']:.0f}",
            _percent(row.get("accuracy")), _percent(row.get("agreement")),
        ])
        if end_to_end:
            e2e, mp, folder = row.get("end_to_end_ms"), row.get("source_megapixels"), row.get("folder_ips")
            lines[-1] += [f"{mp['p50']:.1f}" if mp else "-", f"{e2e['p50']:.2f}" if e2e else "-",
                          f"{folder:.1f}" if folder else "-"]
    return lines


def _pick_extras(pick: dict) -> str:
    """The pick line's agreement (when asked for) and the layers its int8 file keeps in float."""
    text = ""
    if pick.get("min_agreement") is not None and pick.get("agreement") is not None:
        text += f", agreement {pick['agreement']:.1%} (at least {pick['min_agreement']:g}%)"
    layers = pick.get("float_layers") or []
    if layers:
        text += f"; {len(layers)} layer{'s' if len(layers) > 1 else ''} kept in float: " + \
            ", ".join(safe_text(name) for name in layers)
    return text


@click.command("bench")
@click.argument("artifacts", metavar="ARTIFACT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path),
              help="Folder of images, one sub-folder per class: accuracy, agreement, preprocessing time.")
@click.option("--limit", type=click.IntRange(min=1), help="Use at most this many images of --data.")
@click.option("--threads", "threads", default="1", show_default=True, help="Comma list of thread counts.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1), help="Images per call.")
@click.option("--runs", type=click.IntRange(min=1), help="Timed calls per row [default: 50].")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Time budget per row instead of --runs.")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(min=0), help="Untimed calls first.")
@click.option("--reference", type=click.Path(path_type=Path),
              help="Model to compare with: a .keras checkpoint (also measured with TensorFlow) or an artifact "
                   "[default: the float32 artifact].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help=f"Write the full report as JSON. {REPLACED}")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help=f"Write one CSV line per row. {REPLACED}")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help=f"Write a PNG: accuracy vs p50 latency, and latency distributions. {REPLACED}")
@click.option("--pick", is_flag=True, help="Name the fastest artifact within --max-drop of the reference accuracy.")
@click.option("--max-drop", default=1.0, show_default=True, type=float,
              help="Accuracy points --pick may lose against the reference.")
@click.option("--min-agreement", type=float, metavar="PCT",
              help="With --pick: the pick must also agree with the reference's top-1 class on at least PCT% of "
                   "the --data images.")
@click.option("--end-to-end", is_flag=True,
              help="Also time decode + resize + inference of the --data files as they are, and the folder rate "
                   "through predict_iter.")
@click.option("--timeout", default=1800.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds one row's process may take.")
def bench_command(artifacts: tuple[Path, ...], data, limit, threads: str, batch: int, runs, seconds, warmup: int,
                  reference, json_path, csv_path, plot_path, pick: bool, max_drop: float,
                  min_agreement: Optional[float], end_to_end: bool, timeout: float) -> None:
    """Measure .tflite/.onnx artifacts side by side, each thread count in a fresh process.

    Per row: load time, cold start, latency percentiles, throughput, memory,
    preprocessing time, and with --data accuracy and agreement with the
    reference. With --end-to-end, each row also times decode + resize +
    inference of the --data files as they are (their megapixels shown) and
    the folder rate through predict_iter. A --data file that cannot be read
    is left out and named in a note. A model that fails gives a row with its
    error, the others are still measured, and the exit code is 1.

    \b
    Example:
      edgelite bench artifacts/*.tflite artifacts/*.onnx --threads 1,2 \\
          --data data/validation --reference model.keras --seconds 10 \\
          --json bench.json --csv bench.csv --plot bench.png --pick --max-drop 1.0 --min-agreement 99
    """
    from edgelite.bench import BenchOptions, run_bench, write_csv, write_json, write_plot

    models = [*artifacts, *([reference] if reference is not None else [])]
    outputs = {option: check_report(path, option, models, [data] if data is not None else [])
               for option, path in (("--json", json_path), ("--csv", csv_path), ("--plot", plot_path))}
    options = BenchOptions(threads=_threads(threads), batch=batch, runs=runs, seconds=seconds, warmup=warmup,
                           data=data, limit=limit, reference=reference, timeout=timeout, pick=pick,
                           max_drop=max_drop, min_agreement=min_agreement, end_to_end=end_to_end)
    with ProgressBar() as progress:
        report = run_bench(list(artifacts), options, progress)
    for message in report.notes:
        note(message)
    notes = dict.fromkeys(f"{row['name']}: {m}" for row in report.rows for m in row.get("assumptions") or [])
    notes.update(dict.fromkeys(f"skipped {m}" for row in report.rows for m in row.get("unreadable_images") or []))
    for message in notes:
        note(message)
    prefix = shared_prefix([row["name"] for row in report.rows])
    title = (f"models {prefix}...; " if prefix else "") + \
        f"batch {batch}; load average {report.machine['loadavg'][0]:.2f} at the start"
    if report.reference:
        title += f"; agreement with {report.reference['name']}"
    table(title, COLUMNS + (E2E_COLUMNS if end_to_end else []), table_rows(report.rows, end_to_end), keys=2)
    for option, writer in (("--json", write_json), ("--csv", write_csv), ("--plot", write_plot)):
        if outputs[option] is not None:
            writer(report, outputs[option])
    if report.pick and report.pick.get("name"):
        p = report.pick
        click.echo(f"pick: {safe_text(p['name'])} at {p['threads']} thread(s): p50 {p['latency_p50_ms']:.2f} ms, "
                   f"accuracy {p['accuracy']:.1%} (reference {p['reference_accuracy']:.1%}, "
                   f"budget {p['max_drop']:g} points)" + _pick_extras(p))
    if report.pick and report.pick.get("error"):
        raise PickError(report.pick["error"])
    if report.failed:
        for row in report.failed:
            click.echo(f"error: {safe_text(row['name'])} x{row['threads']}: {safe_text(row['error'])}", err=True)
        click.echo(f"error: {len(report.failed)} of {len(report.rows)} rows failed", err=True)
        raise click.exceptions.Exit(1)


COMMANDS = [bench_command]
