"""`edgelite demo`: train, convert and predict on the bundled sample, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import click

from edgelite.cli.common import PARITY_COLUMNS, ProgressBar, note, parity_rows, table, warn
from edgelite.errors import DatasetError

SAMPLE = Path("examples/clothing-mini")


@click.command("demo")
@click.option("--data", type=click.Path(path_type=Path), default=SAMPLE, show_default=True,
              help="Dataset with train/ and validation/ class folders.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True,
              help="Folder for the run and the artifacts (replaced if it holds an earlier demo).")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--size", default=150, show_default=True, type=click.IntRange(min=16),
              help="Input size of the small CNN.")
def demo_command(data: Path, out: Path, epochs: int, size: int) -> None:
    """Train the small CNN on the sample, convert it to every artifact, check and predict.

    Runs offline on a CPU: trains the course's small CNN on DATA/train, converts
    the best checkpoint to TFLite float32/float16/dynamic/int8 and ONNX
    float32/int8 (int8 calibrated on DATA/train), prints the parity table
    against DATA/validation, and classifies a few validation photos with the
    int8 TFLite model through the light runtime.

    \b
    Example:
      edgelite demo
      edgelite demo --data my-dataset --epochs 5 --out demo-out
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
    click.echo(f"1/3 training the small CNN on {data / 'train'} for {epochs} epochs", err=True)
    with ProgressBar() as progress:
        result = train("scratch", TrainOptions(data=data, out=run_dir, epochs=epochs, verbose=0),
                       {"size": size}, log=lambda m: click.echo(f"    {m}", err=True), progress=progress)
    if result.best_checkpoint is None:
        raise DatasetError("training produced no checkpoint")
    click.echo(f"2/3 converting {result.best_checkpoint.name} to every artifact", err=True)
    options = ConvertOptions(calibration=data / "train", check=data / "validation")
    with ProgressBar() as progress:
        report = convert(result.best_checkpoint, artifacts, options, progress)
    for message in report.warnings:
        warn(message)
    images = report.artifacts[0].parity.images
    table(f"parity against the Keras model on {images} validation images", PARITY_COLUMNS,
          parity_rows(report.artifacts))

    int8 = next(a.path for a in report.artifacts if a.format == "tflite" and a.precision == "int8")
    click.echo(f"3/3 predicting with {int8.name} through edgelite.runtime (no TensorFlow needed)", err=True)
    model = load(int8)
    samples = {}
    for item in read_folder(data / "validation"):
        samples.setdefault(item.label, item.path)
    picked = list(samples.items())[:5]
    predictions = model.predict_batch([path for _, path in picked], top_k=3)
    rows = [[path.name[:20], truth, ranked[0].label, f"{ranked[0].score:.3f}",
             ", ".join(f"{p.label} {p.score:.2f}" for p in ranked[1:])]
            for (truth, path), ranked in zip(picked, predictions)]
    table("predictions", ["image", "true class", "predicted", "score", "next"], rows)
    note(f"artifacts and manifest.json are in {artifacts}; try: edgelite predict {int8} <photo.jpg>")


COMMANDS = [demo_command]
