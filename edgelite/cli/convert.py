"""`edgelite convert`."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from edgelite.cli.common import (PARITY_COLUMNS, ProgressBar, artifact_prefix, interrupt_on_terminate, note,
                                 parity_rows, parse_labels, print_json, split_list, table, warn)
from edgelite.errors import ParityError
from edgelite.modes import Compat, Decode, Format, IntegerIO, Interpolation, Precision, Scaling, choices


@click.command("convert")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Folder for the artifacts.")
@click.option("--precision", default=",".join(choices(Precision)), show_default=True,
              help=f"Comma list of {', '.join(choices(Precision))}.")
@click.option("--format", "formats", default=",".join(choices(Format)), show_default=True,
              help=f"Comma list of {', '.join(choices(Format))}.")
@click.option("--calibration", type=click.Path(path_type=Path),
              help="Folder of real images for int8 calibration (needed for int8).")
@click.option("--check", type=click.Path(path_type=Path),
              help="Folder of real images for the parity check (default: the calibration folder).")
@click.option("--labels", help="Class names as a,b,c or a file with one per line (if the checkpoint has none).")
@click.option("--preprocess", type=click.Choice(choices(Scaling)),
              help="Scaling the checkpoint expects outside its graph: rescale is x/255, xception x/127.5-1, "
                   "imagenet torchvision's (x/255 - mean) / std.")
@click.option("--mean", help="With --preprocess imagenet: the per-channel mean as R,G,B in 0-1 units "
                             "(default ImageNet's 0.485,0.456,0.406).")
@click.option("--std", help="With --preprocess imagenet: the per-channel std as R,G,B in 0-1 units "
                            "(default ImageNet's 0.229,0.224,0.225).")
@click.option("--interpolation", type=click.Choice(choices(Interpolation)),
              help="Resize filter to record (default: the checkpoint's, else bilinear).")
@click.option("--decode", type=click.Choice(choices(Decode)),
              help="JPEG decoding to record and check with: fast (reduced DCT scale for photos much larger than "
                   "the input) or exact (default: the checkpoint's, else fast).")
@click.option("--int8-io", "integer_io", type=click.Choice(choices(IntegerIO)), default="uint8", show_default=True,
              help="Input/output type of the full-integer TFLite model.")
@click.option("--max-calibration-images", default=500, show_default=True, type=click.IntRange(min=1),
              help="Use at most this many calibration images (a fixed random sample).")
@click.option("--max-check-images", default=200, show_default=True, type=click.IntRange(min=1),
              help="Check parity on at most this many images (a fixed random sample).")
@click.option("--compat", type=click.Choice(choices(Compat)),
              help="Keep every TFLite artifact loadable by an older runtime (fails if one cannot be).")
@click.option("--strict", is_flag=True, help="Exit 1 if an artifact misses its parity threshold.")
@click.option("--force", is_flag=True,
              help="Replace artifacts and manifest.json already in --out (without it, convert refuses to start).")
@click.option("--explain-int8", "explain", is_flag=True,
              help="Then run LiteRT's and onnxruntime's quantization debuggers on the calibration images and "
                   "list the int8 layers with the largest error.")
@click.option("--min-agreement", type=click.FloatRange(0, 100, min_open=True), metavar="PCT",
              help="int8: keep the fewest layers in float until the artifact gives the Keras model's top-1 class "
                   "on at least PCT% of the selection images (needs --check apart from --calibration).")
@click.option("--max-drop", type=click.FloatRange(0, 100), metavar="POINTS",
              help="int8: keep layers in float until top-1 accuracy drops at most POINTS against the Keras model "
                   "on the selection images.")
@click.option("--selection", type=click.Path(path_type=Path),
              help="Folder of images that choose the float layers (default: every other image of each class of "
                   "--check; parity is then reported on the rest).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def convert_command(checkpoint: Path, out: Path, precision: str, formats: str, calibration, check, labels,
                    preprocess, mean, std, interpolation, decode, integer_io, max_calibration_images: int,
                    max_check_images: int, compat, strict: bool, force: bool, explain: bool,
                    min_agreement, max_drop, selection, as_json: bool) -> None:
    """Convert a Keras, PyTorch or ONNX classifier to TFLite and ONNX artifacts, each checked against it.

    CHECKPOINT is a .keras file, a Keras 2 .h5 file, a SavedModel folder, a
    PyTorch program saved with torch.export.save (.pt2; a .pt/.pth pickle is
    refused, never unpickled) or an ONNX file with one (N, 3, H, W) image input.
    PyTorch and ONNX artifacts take raw 0-255 RGB like every other: the
    normalisation and the layout change are put inside their graphs.
    Every artifact is run on real images and compared with the source model
    (run by Keras, torch or onnxruntime);
    the table and out/manifest.json show size, max |diff| and top-1 agreement.
    An artifact or manifest.json already in --out is never replaced silently:
    convert refuses before any work unless --force is given. If convert fails
    or is interrupted, only the files it created are removed, and with --force
    the files it was replacing are put back.

    \b
    Example:
      edgelite convert model.keras --out artifacts --calibration data/validation
      edgelite convert course.h5 --out artifacts --preprocess xception \\
          --labels labels.txt --calibration data/validation --precision float32,int8
      edgelite convert model.keras --out artifacts --calibration data/train --explain-int8
      edgelite convert resnet.pt2 --out artifacts --preprocess imagenet --calibration data/train \\
          --check data/validation
      edgelite convert model.keras --out artifacts --calibration data/train \\
          --check data/validation --precision int8 --min-agreement 99.5
    """
    from edgelite.convert import ConvertOptions, convert
    from edgelite.convert.explain import explain_int8

    options = ConvertOptions(  # ConvertOptions checks every mode; the CLI only splits the lists
        formats=cast(tuple[Format, ...], split_list(formats) or ()),
        precisions=cast(tuple[Precision, ...], split_list(precision) or ()),
        calibration=calibration,
        check=check,
        labels=parse_labels(labels),
        preprocess=cast(Scaling, preprocess),
        mean=_channels(mean, "--mean"),
        std=_channels(std, "--std"),
        interpolation=cast(Interpolation, interpolation),
        decode=cast(Decode, decode),
        integer_io=cast(IntegerIO, integer_io),
        strict=strict,
        force=force,
        max_calibration_images=max_calibration_images,
        max_check_images=max_check_images,
        compat=cast(Compat, compat),
        min_agreement=None if min_agreement is None else min_agreement / 100,
        max_drop=None if max_drop is None else max_drop / 100,
        selection=selection,
    )
    failure = None
    with interrupt_on_terminate() as interrupts, ProgressBar() as bar:
        progress = interrupts.guard(bar)  # a signal some library swallowed stops the run at its next step
        try:
            report = convert(checkpoint, out, options, progress)
        except ParityError as exc:  # everything was written: show it, then fail
            if exc.report is None:
                raise
            report, failure = exc.report, exc
        explanation = explain_int8(checkpoint, options, progress=progress) if explain else None
    for message in report.warnings:
        warn(message)
    for message in report.notes:
        note(message)
    if as_json:
        print_json({"out": str(report.out), "artifacts": [a.to_dict() for a in report.artifacts],
                    "warnings": report.warnings, "notes": report.notes,
                    **({"selection_images": report.selection_images, "check_images": report.check_images}
                       if report.selection_images else {}),
                    **({"explain_int8": explanation.to_dict()} if explanation else {})})
    else:
        images = report.artifacts[0].parity.images if report.artifacts else 0
        prefix = artifact_prefix(report.artifacts)
        named = f"; artifact names start {prefix}" if prefix else ""
        shown = f"{report.check_images}" if report.check_images else f"{images} images from {report.check_folder}"
        table(f"{checkpoint.name} -> {out}  (parity on {shown}{named})", PARITY_COLUMNS, parity_rows(report.artifacts))
        _float_layer_table(report)
        if explanation:
            _explanation_tables(explanation)
    if failure is not None:
        raise failure


def _channels(text, option: str):
    """R,G,B as three floats (None when not given); ConvertOptions checks the count."""
    if text is None:
        return None
    try:
        return tuple(float(v) for v in split_list(text) or ())
    except ValueError:
        raise click.BadParameter(f"expected numbers as R,G,B, got {text!r}", param_hint=option) from None


def _float_layer_table(report) -> None:
    """The price of the agreement target per int8 artifact: layers kept in float, agreement, latency."""
    chosen = [a for a in report.artifacts if a.float_layers is not None]
    if not chosen:
        return
    rows = []
    for a in chosen:
        f = a.float_layers
        latency = (f"{f.latency_ms_plain:.2f} -> {f.latency_ms:.2f} ms ({f.latency_ratio:.2f}x)"
                   if f.latency_ratio is not None else "-")
        accuracy = ("-" if f.accuracy_before is None or f.accuracy_after is None
                    else f"{f.accuracy_before:.1%} -> {f.accuracy_after:.1%}")
        rows.append([a.path.name, ", ".join(f.layers) or "none", f"{f.selection_before:.1%} -> {f.selection_after:.1%}",
                     f"{f.agreement_before:.1%} -> {f.agreement_after:.1%}", accuracy, latency,
                     "met" if f.met else "missed"])
    table(f"int8 target {chosen[0].float_layers.target}: layers chosen on {report.selection_images}",
          ["artifact", "kept in float", "selection agree", "top-1 agree", "accuracy", "latency", "target"], rows)


def _explanation_tables(explanation) -> None:
    from edgelite.convert.explain import format_rows

    last = {"tflite": "rmse/scale", "onnx": "vs float dB"}
    for fmt in ("tflite", "onnx"):
        worst = explanation.worst(fmt)
        if worst:
            table(f"int8 {fmt}: largest error first ({explanation.images} images)",
                  ["layer", "op", "SQNR dB", last[fmt]], format_rows(worst))


COMMANDS = [convert_command]
