"""`edgelite convert`."""

from __future__ import annotations

from pathlib import Path

import click

from edgelite.errors import ParityError
from edgelite.runtime.op_versions import version_key
from edgelite.cli.common import ProgressBar, human_size, note, parse_labels, print_json, split_list, table, warn


def parity_rows(artifacts) -> list[list[str]]:
    """Table rows of artifacts with size and parity, shared by convert and demo."""
    rows = []
    for a in artifacts:
        p = a.parity
        acc = "-" if p.accuracy is None else f"{p.accuracy:.1%}"
        rows.append([a.path.name, a.format, a.precision, human_size(a.size_bytes), f"{p.max_abs_diff:.2e}",
                     f"{p.top1_agreement:.1%}", acc, "ok" if p.passed else "below", a.min_runtime or "-"])
    return rows


PARITY_COLUMNS = ["artifact", "format", "precision", "size", "max |diff|", "top-1 agree", "accuracy", "strict",
                  "min TFLite"]


@click.command("convert")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Folder for the artifacts.")
@click.option("--precision", default="float32,float16,dynamic,int8", show_default=True,
              help="Comma list of float32, float16, dynamic, int8.")
@click.option("--format", "formats", default="tflite,onnx", show_default=True, help="Comma list of tflite, onnx.")
@click.option("--calibration", type=click.Path(path_type=Path),
              help="Folder of real images for int8 calibration (needed for int8).")
@click.option("--check", type=click.Path(path_type=Path),
              help="Folder of real images for the parity check (default: the calibration folder).")
@click.option("--labels", help="Class names as a,b,c or a file with one per line (if the checkpoint has none).")
@click.option("--preprocess", type=click.Choice(["none", "rescale", "xception"]),
              help="Scaling the checkpoint expects outside its graph: rescale is x/255, xception x/127.5-1.")
@click.option("--interpolation", type=click.Choice(["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]),
              help="Resize filter to record (default: the checkpoint's, else bilinear).")
@click.option("--int8-io", "integer_io", type=click.Choice(["uint8", "int8"]), default="uint8", show_default=True,
              help="Input/output type of the full-integer TFLite model.")
@click.option("--max-calibration-images", default=500, show_default=True, type=click.IntRange(min=1),
              help="Use at most this many calibration images (a fixed random sample).")
@click.option("--max-check-images", default=200, show_default=True, type=click.IntRange(min=1),
              help="Check parity on at most this many images (a fixed random sample).")
@click.option("--compat", type=click.Choice(["tflite-runtime-2.14"]),
              help="Keep every TFLite artifact loadable by an older runtime (fails if one cannot be).")
@click.option("--strict", is_flag=True, help="Exit 1 if an artifact misses its parity threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def convert_command(checkpoint: Path, out: Path, precision: str, formats: str, calibration, check, labels,
                    preprocess, interpolation, integer_io: str, max_calibration_images: int,
                    max_check_images: int, compat, strict: bool, as_json: bool) -> None:
    """Convert a Keras checkpoint to TFLite and ONNX artifacts, each checked against it.

    CHECKPOINT is a .keras file, a Keras 2 .h5 file or a SavedModel folder.
    Every artifact is run on real images and compared with the Keras model;
    the table and out/manifest.json show size, max |diff| and top-1 agreement.

    \b
    Example:
      edgelite convert model.keras --out artifacts --calibration data/validation
      edgelite convert course.h5 --out artifacts --preprocess xception \\
          --labels labels.txt --calibration data/validation --precision float32,int8
    """
    from edgelite.convert import ConvertOptions, convert

    options = ConvertOptions(
        formats=split_list(formats) or (),  # type: ignore[arg-type]
        precisions=split_list(precision) or (),  # type: ignore[arg-type]
        calibration=calibration,
        check=check,
        labels=parse_labels(labels),
        preprocess=preprocess,
        interpolation=interpolation,
        integer_io=integer_io,
        strict=strict,
        max_calibration_images=max_calibration_images,
        max_check_images=max_check_images,
        compat=compat,
    )
    with ProgressBar() as progress:
        report = convert(checkpoint, out, options, progress)
    for message in report.warnings:
        warn(message)
    for message in report.notes:
        note(message)
    if as_json:
        print_json({"out": str(report.out), "artifacts": [a.to_dict() for a in report.artifacts],
                    "warnings": report.warnings})
    else:
        images = report.artifacts[0].parity.images if report.artifacts else 0
        table(f"{checkpoint.name} -> {out}  (parity on {images} images from {report.check_folder})",
              PARITY_COLUMNS, parity_rows(report.artifacts))
    newer = [a for a in report.artifacts if a.min_runtime and version_key(a.min_runtime) > version_key("2.14.0")]
    if newer and not as_json:
        needed = max((a.min_runtime for a in newer), key=version_key)
        names = ", ".join(a.path.name for a in newer)
        note(f"{names} need{'s' if len(newer) == 1 else ''} TFLite {needed} or newer (ai-edge-litert); "
             f"tflite-runtime 2.14 cannot load {'it' if len(newer) == 1 else 'them'}: "
             "convert with --compat tflite-runtime-2.14 for one it can load")
    if strict and report.failed:
        names = ", ".join(a.path.name for a in report.failed)
        raise ParityError(f"below the --strict parity thresholds: {names} (see {out / 'manifest.json'})")


COMMANDS = [convert_command]
