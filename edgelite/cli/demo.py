"""`edgelite demo`: train, convert and predict on the bundled sample, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import click

from edgelite.cli.common import (PARITY_COLUMNS, ProgressBar, artifact_prefix, interrupt_on_terminate, note,
                                 parity_rows, safe_text, split_list, table, warn)
from edgelite.errors import DatasetError

SAMPLE = Path("examples/clothing-mini")
# The homework's shape: two clearly different classes, one sigmoid unit. Of the sample's pairs,
# these two separate best with the small CNN (measured in the README's demo section).
DEMO_CLASSES = ("outwear", "pants")
SAMPLES_SHOWN = 6


@click.command("demo")
@click.option("--data", type=click.Path(path_type=Path), default=SAMPLE, show_default=True,
              help="Dataset with train/ and validation/ class folders.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True,
              help="Folder for the run and the artifacts (replaced if it holds an earlier demo).")
@click.option("--classes", default=",".join(DEMO_CLASSES), show_default=True,
              help="Class folders to train on (two give one sigmoid unit), or 'all' for every class.")
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(min=1),
              help="Passes over the training photos; the best epoch on validation is kept.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Small batches: 30 photos per class are only a few steps per epoch.")
@click.option("--size", default=96, show_default=True, type=click.IntRange(min=16),
              help="Input size of the small CNN.")
def demo_command(data: Path, out: Path, classes: str, epochs: int, batch_size: int, size: int) -> None:
    """Train the small CNN on two classes of the sample, convert it to every artifact, check and predict.

    Runs offline on a CPU: trains the course's small CNN (one sigmoid unit) on
    two classes of DATA/train, converts the best checkpoint to TFLite
    float32/float16/dynamic/int8 and ONNX float32/int8 (int8 calibrated on
    DATA/train), prints the parity table against DATA/validation, and
    classifies a few validation photos of those classes with the int8 TFLite
    model through the light runtime. `--classes all` trains on every class.

    \b
    Example:
      edgelite demo
      edgelite demo --classes all --epochs 10 --batch-size 32 --size 150
      edgelite demo --data my-dataset --classes cats,dogs --out demo-out
    """
    import shutil

    from edgelite.convert import ConvertOptions, convert
    from edgelite.runtime import load
    from edgelite.runtime.folder import read_folder
    from edgelite.train import TrainOptions, train

    if not (data / "train").is_dir() or not (data / "validation").is_dir():
        raise DatasetError(f"{data}: expected train/ and validation/ class folders "
                           "(run the demo from the repository root, or pass --data)")
    run_dir, artifacts = out / "run", out / "artifacts"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    selected = None if classes == "all" else split_list(classes)
    shown = "every class" if selected is None else ", ".join(selected)
    click.echo(f"1/3 training the small CNN on {shown} of {data / 'train'} for {epochs} epochs", err=True)
    options = TrainOptions(data=data, out=run_dir, epochs=epochs, batch_size=batch_size, verbose=0, force=True,
                           classes=selected)
    with ProgressBar() as progress:
        result = train("scratch", options, {"size": size}, log=lambda m: click.echo(f"    {safe_text(m)}", err=True),
                       progress=progress)
    if result.best_checkpoint is None:
        raise DatasetError("training produced no checkpoint")
    click.echo(f"2/3 converting {result.best_checkpoint.name} to every artifact", err=True)
    # The demo replaces its own earlier artifacts, so it runs twice in a row.
    options = ConvertOptions(calibration=data / "train", check=data / "validation", force=True)
    with interrupt_on_terminate() as interrupts, ProgressBar() as bar:
        report = convert(result.best_checkpoint, artifacts, options, interrupts.guard(bar))
    for message in report.warnings:
        warn(message)
    images = report.artifacts[0].parity.images
    known = "" if selected is None else f"; accuracy on the photos of {shown}"
    prefix = artifact_prefix(report.artifacts)
    named = f"; artifact names start {prefix}" if prefix else ""
    table(f"parity against the Keras model on {images} validation images{known}{named}", PARITY_COLUMNS,
          parity_rows(report.artifacts))

    int8 = next(a.path for a in report.artifacts if a.format == "tflite" and a.precision == "int8")
    click.echo(f"3/3 predicting with {int8.name} through edgelite.runtime (no TensorFlow needed)", err=True)
    model = load(int8)
    picked = _samples(read_folder(data / "validation"), model.metadata.labels)
    predictions = model.predict_batch([path for _, path in picked], top_k=3)
    rows = [[path.name[:20], truth, ranked[0].label, f"{ranked[0].score:.3f}",
             ", ".join(f"{p.label} {p.score:.2f}" for p in ranked[1:])]
            for (truth, path), ranked in zip(picked, predictions)]
    table("predictions", ["image", "true class", "predicted", "score", "next"], rows)
    note(f"artifacts and manifest.json are in {artifacts}; try: edgelite predict {int8} <photo.jpg>")
    if selected is not None:  # the sample's other class folders would make evaluate refuse
        note(f"and: edgelite evaluate {int8} {data / 'validation'} --only-model-classes")


def _samples(items, labels) -> list:
    """(class, path) of a few validation photos of the model's classes, taking the classes in turn."""
    by_class: dict = {label: [i.path for i in items if i.label == label] for label in labels}
    picked = []
    for rank in range(SAMPLES_SHOWN):
        picked += [(label, paths[rank]) for label, paths in by_class.items() if rank < len(paths)]
    return picked[:SAMPLES_SHOWN]


COMMANDS = [demo_command]
