"""`edgelite evaluate`."""

from __future__ import annotations

from pathlib import Path

import click

from edgelite.cli.common import ProgressBar, note, print_json, table, warn
from edgelite.cli.reports import REPLACED, check_report


@click.command("evaluate")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(min=1), help="k of the top-k accuracy.")
@click.option("--mistakes", default=10, show_default=True, type=click.IntRange(min=0),
              help="How many of the most confident mistakes to list.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the interpreter.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--limit", type=click.IntRange(min=1), help="Use at most this many images (a seeded sample).")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False),
              help=f"Write the confusion matrix as a PNG. {REPLACED}")
@click.option("--only-model-classes", is_flag=True,
              help="Evaluate only the class folders the model knows; the others are named and skipped.")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as JSON.")
def evaluate_command(model_path: Path, data: Path, top_k: int, mistakes: int, threads, batch_size: int, limit,
                     plot_path, only_model_classes: bool, as_json: bool) -> None:
    """Evaluate a .keras, .tflite or .onnx model per class on a folder of class folders.

    Prints accuracy, top-k accuracy, precision, recall, F1 and support per
    class, the confusion matrix and the most confident mistakes. Class names
    come from the model and must match the folder names; with
    --only-model-classes, folders of other classes are skipped and named with
    their image counts. Top-k is at most the number of classes.

    \b
    Example:
      edgelite evaluate artifacts/model_int8.tflite data/validation --plot confusion.png
      edgelite evaluate runs/scratch/scratch_08_0.702.keras data/validation --json
      edgelite evaluate demo-out/artifacts/MODEL_int8.tflite examples/clothing-mini/validation \
          --only-model-classes
    """
    from edgelite.bench.evaluate import EvaluateOptions, evaluate, plot_confusion

    plot_target = check_report(plot_path, "--plot", [model_path], [data])
    options = EvaluateOptions(top_k=top_k, mistakes=mistakes, threads=threads, batch_size=batch_size, limit=limit,
                              only_model_classes=only_model_classes)
    with ProgressBar(unit="images") as progress:
        result = evaluate(model_path, data, options, progress)
    if plot_path is not None:
        plot_confusion(result, plot_target)
    for message in result.unreadable:
        warn(f"skipped {message}")
    if result.skipped:
        note(f"skipped {len(result.skipped)} class folder{'s' if len(result.skipped) != 1 else ''} the model "
             "does not know: " + ", ".join(f"{name} ({count} image{'s' if count != 1 else ''})"
                                           for name, count in result.skipped.items()))
    if as_json:
        print_json(result.to_dict())
        return
    title = (f"{model_path.name} on {result.images} images of {data}: accuracy {result.accuracy:.1%}, "
             f"top-{result.top_k} {result.top_k_accuracy:.1%}")
    table(title, ["class", "precision", "recall", "F1", "support"],
          [[c.name, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", c.support] for c in result.per_class])
    table("confusion matrix (rows: true class, columns: predicted)", ["true \\ predicted", *result.classes],
          [[name, *row] for name, row in zip(result.classes, result.confusion)])
    if result.mistakes:
        table("most confident mistakes", ["image", "true", "predicted", "score"],
              [[m["image"], m["true"], m["predicted"], f"{m['score']:.3f}"] for m in result.mistakes])
    if plot_path is not None:
        click.echo(f"plot: {plot_path}")


COMMANDS = [evaluate_command]
