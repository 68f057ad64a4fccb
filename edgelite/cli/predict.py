"""`edgelite predict` and `edgelite info`: the light runtime from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from edgelite.cli.common import human_size, note, parse_labels, print_json, table
from edgelite.errors import EdgeliteError
from edgelite.modes import Scaling, choices


@click.command("predict")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1), help="Classes to show per image.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the interpreter.")
@click.option("--labels", help="Class names as a,b,c or a file (for models without edgelite metadata).")
@click.option("--preprocess", type=click.Choice(choices(Scaling)),
              help="Pixel scaling, for models without edgelite metadata.")
@click.option("--json", "as_json", is_flag=True, help="Print predictions as JSON.")
def predict_command(model_path: Path, images: tuple[Path, ...], top_k: int, threads, labels, preprocess,
                    as_json: bool) -> None:
    """Classify images with a .tflite or .onnx artifact.

    An edgelite artifact carries its labels, input size and preprocessing, so
    no other flag is needed. Images that cannot be read are reported on stderr
    and the exit code is 1; the others are still classified.

    \b
    Example:
      edgelite predict artifacts/model_int8.tflite photo.jpg other.png --top-k 3
    """
    from edgelite.runtime import load

    model = load(model_path, threads=threads, labels=parse_labels(labels), scaling=preprocess)
    results, failures = [], []
    for image in images:
        try:
            prepared = model.prepare(image)
        except EdgeliteError as exc:
            failures.append(str(exc))
            continue
        ranked = model.rank(model.class_scores(model.run(prepared.pixels[None])), top_k)[0]
        results.append({"image": str(image), "notes": prepared.notes,
                        "predictions": [{"label": p.label, "score": round(p.score, 6)} for p in ranked]})
    for message in model.assumptions:
        note(message)
    if as_json:
        print_json({"model": str(model_path), "backend": model.backend_name, "results": results,
                    "errors": failures})
    else:
        for result in results:
            for message in result["notes"]:
                note(message)
        rows = [[r["image"]] + [f"{p['label']} {p['score']:.4f}" for p in r["predictions"]] for r in results]
        if rows:
            table(f"{model_path.name} ({model.backend_name})", ["image"] + [f"#{i + 1}" for i in range(top_k)],
                  rows)
    for message in failures:
        click.echo(f"error: {message}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


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
                    "graph_scaling", "interpolation", "output_kind", "source_sha256", "edgelite_version"):
            value = ", ".join(meta[key]) if key == "labels" else meta[key]
            rows.append([key, value])
    else:
        rows.append(["metadata", "none (not written by edgelite)"])
    if "operators" in info:
        rows.append(["operators", ", ".join(f"{o['name']} v{o['version']}" for o in info["operators"])])
    if info.get("min_runtime"):
        rows.append(["min runtime", info["min_runtime"]])
    table(None, ["field", "value"], rows)


COMMANDS = [predict_command, info_command]
