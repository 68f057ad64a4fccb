"""Issue 18: int8 artifacts converted to an agreement target (`convert --min-agreement`), and the price.

Converts a trained checkpoint to int8 TFLite and ONNX twice in one run (plain,
then with `--min-agreement`), calibrating on the training images and splitting
the validation images into a selection half (chooses the float layers) and a
reporting half (the agreement and accuracy shown). Records per artifact the
layers kept in float, agreement and accuracy before and after, and the latency
of plain vs chosen artifact timed in turn by convert itself, with the machine
(CPU model and flags, load average).

    python benchmarks/int8_target.py CHECKPOINT [--target 99.5] [--selection-images N]
        [--out benchmarks/int8_target.json] [--calibration-study] [--sampling-study] [--studies-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

DATASET = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small"))
CHECK_IMAGES = 400  # more than the 341 validation images: all of them


def machine() -> dict:
    """CPU model and flags from /proc/cpuinfo, core count and load average."""
    info: dict = {"cores": os.cpu_count(), "python": platform.python_version()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields.get("model name")
        flags = set(fields.get("flags", "").split())
        info["flags"] = sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma", "sse4_2"})
    except OSError:
        pass
    info["load_average"] = os.getloadavg()
    return info


def link_files(paths: list[Path], folder: Path) -> Path:
    """`folder`/<class>/<name> symlinks to `paths` (whose parent folder is their class)."""
    for path in paths:
        link = folder / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    return folder


def calibration_budget() -> int:
    """How many calibration images convert takes by default (500)."""
    from edgelite.convert import ConvertOptions

    return ConvertOptions.__dataclass_fields__["max_calibration_images"].default


def convert_calibration_sample(data: Path) -> list[Path]:
    """The training images convert calibrates on by default: its seeded sample of `calibration_budget()`."""
    from edgelite.runtime.folder import read_folder

    return [item.path for item in read_folder(data / "train", limit=calibration_budget())]


def unused_training_images(data: Path, count: int) -> list[Path]:
    """`count` training images that convert's calibration sample does not hold (seeded)."""
    from edgelite.runtime.folder import read_folder

    calibration = set(convert_calibration_sample(data))
    rest = [item.path for item in read_folder(data / "train") if item.path not in calibration]
    return sorted(random.Random(1).sample(rest, min(count, len(rest))))


def measure(checkpoint: Path, target: float, data: Path = DATASET, selection_images: int = 0) -> dict:
    """Plain int8 and int8 to `target` (a fraction) of `checkpoint`, with what each costs.

    With `selection_images`, that many training images outside the calibration
    sample choose the float layers and all validation images report; else
    convert splits the validation images in two.
    """
    from edgelite.convert import ConvertOptions, convert

    started, before = time.time(), machine()
    with tempfile.TemporaryDirectory(prefix="edgelite-int8-target-") as out:
        selection = (link_files(unused_training_images(data, selection_images), Path(out) / "selection")
                     if selection_images else None)
        options = ConvertOptions(precisions=("int8",), calibration=data / "train", check=data / "validation",
                                 max_check_images=max(CHECK_IMAGES, selection_images), min_agreement=target,
                                 selection=selection)
        report = convert(checkpoint, Path(out) / "artifacts", options)
    rows = []
    for artifact in report.artifacts:
        chosen = artifact.float_layers
        parity = artifact.parity
        rows.append({"artifact": artifact.path.name, "format": artifact.format, **chosen.to_dict(),
                     "reporting_images": parity.images, "reference_accuracy": parity.reference_accuracy,
                     "drop_before": _drop(parity.reference_accuracy, chosen.accuracy_before),
                     "drop_after": _drop(parity.reference_accuracy, chosen.accuracy_after)})
    return {"checkpoint": checkpoint.name, "target": target, "selection_images": report.selection_images,
            "check_images": report.check_images, "seconds": round(time.time() - started, 1),
            "machine": before, "load_after": os.getloadavg(), "artifacts": rows}


def calibration_study(checkpoint: Path, data: Path = DATASET) -> list[dict]:
    """int8 ONNX top-1 agreement and accuracy on all validation images, per calibration method and weight bits.

    The same float model, calibration images (convert's 500 training images) and
    quantizer settings as `convert`, varying onnxruntime's calibrate_method and
    reduce_range (7-bit weights, convert's default, vs 8-bit).
    """
    import numpy as np
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod

    from edgelite.convert import ConvertOptions
    from edgelite.convert.equalize import equalize_separable
    from edgelite.convert.onnx import _prepare, _quantize_prepared
    from edgelite.convert.source import load_checkpoint
    from edgelite.runtime.folder import pixel_batches, read_folder

    source = load_checkpoint(checkpoint, None, None, None, None, label_folders=(data / "train",))
    meta = source.metadata
    options = ConvertOptions(precisions=("int8",), calibration=data / "train")

    def pixels(folder: Path, limit: int) -> np.ndarray:
        items = read_folder(folder, limit=limit)
        return np.concatenate(list(pixel_batches([i.path for i in items], meta.input_height, meta.input_width,
                                                 meta.interpolation, decode=meta.decode)))

    calibration_pixels = pixels(data / "train", options.max_calibration_images)
    check = pixels(data / "validation", CHECK_IMAGES)
    truth = np.array([meta.labels.index(i.label) for i in read_folder(data / "validation", limit=CHECK_IMAGES)])
    model, _ = equalize_separable(source.model, iter([calibration_pixels]))
    reference = np.asarray(model.predict(check, batch_size=32, verbose=0)).argmax(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgelite-calibration-study-") as folder:
        work = Path(folder)
        model.export(str(work / "float32.onnx"), format="onnx", verbose=False)
        prepared = _prepare(work / "float32.onnx", work)
        for method in ("MinMax", "Percentile", "Entropy"):
            for reduce_range in (True, False):
                out = work / f"{method}-{reduce_range}.onnx"
                started = time.time()
                _quantize_prepared(prepared, out, lambda: (calibration_pixels[i:i + 32]
                                                           for i in range(0, len(calibration_pixels), 32)),
                                   reduce_range=reduce_range, calibrate_method=getattr(CalibrationMethod, method))
                session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
                name = session.get_inputs()[0].name
                outputs = np.concatenate([session.run(None, {name: check[i:i + 32].astype(np.float32)})[0]
                                          for i in range(0, len(check), 32)]).argmax(1)
                rows.append({"calibration": method, "weights": "7-bit" if reduce_range else "8-bit",
                             "agreement": float((outputs == reference).mean()),
                             "accuracy": float((outputs == truth).mean()),
                             "reference_accuracy": float((reference == truth).mean()),
                             "seconds": round(time.time() - started, 1)})
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


def balanced_sample(files_by_class: dict[str, list[Path]], budget: int, seed: int = 0) -> list[Path]:
    """About `budget` files, the same number from every class (all of a class that has fewer), seeded."""
    share = budget // len(files_by_class)
    picked = []
    for name in sorted(files_by_class):
        files = sorted(files_by_class[name])
        picked += files if len(files) <= share else random.Random(f"{seed}:{name}").sample(files, share)
    return sorted(picked)


def sampling_study(checkpoint: Path, data: Path = DATASET) -> list[dict]:
    """Plain int8 TFLite and ONNX agreement on all validation images, per way of picking the calibration images.

    "random" is convert's own pick (a seeded sample of 500 training images, so
    the classes come in the training set's proportions); "balanced" takes 50
    of each of the 10 classes. Each pick is linked into a folder per class and
    handed to `convert` as --calibration, so both formats go through the
    product's own path.
    """
    from edgelite.convert import ConvertOptions, convert
    from edgelite.runtime.folder import class_files

    picks = {"random": convert_calibration_sample(data),
             "balanced": balanced_sample(class_files(data / "train"), calibration_budget())}
    rows = []
    for name, paths in picks.items():
        with tempfile.TemporaryDirectory(prefix="edgelite-sampling-study-") as folder:
            calibration = link_files(paths, Path(folder) / "calibration")
            options = ConvertOptions(precisions=("int8",), calibration=calibration, check=data / "validation",
                                     max_check_images=CHECK_IMAGES)
            started = time.time()
            report = convert(checkpoint, Path(folder) / "out", options)
            for artifact in report.artifacts:
                parity = artifact.parity
                per_class = {label: sum(1 for p in paths if p.parent.name == label)
                             for label in sorted({p.parent.name for p in paths})}
                rows.append({"sampling": name, "format": artifact.format, "calibration_images": len(paths),
                             "per_class": per_class, "agreement": parity.top1_agreement,
                             "accuracy": parity.accuracy, "reference_accuracy": parity.reference_accuracy,
                             "images": parity.images, "seconds": round(time.time() - started, 1)})
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


def _drop(reference, accuracy):
    return None if reference is None or accuracy is None else reference - accuracy


def render(result: dict) -> str:
    """A RESULTS.md table of one measurement."""
    m = result["machine"]
    lines = [f"`{result['checkpoint']}`, target {result['target']:.1%} top-1 agreement; layers chosen on "
             f"{result['selection_images']}; reported on {result['check_images']}. Convert took "
             f"{result['seconds']} s. Machine: {m.get('cpu')}, {m['cores']} cores, "
             f"flags {', '.join(m.get('flags', []))}; "
             f"load average {m['load_average'][0]:.1f} before, {result['load_after'][0]:.1f} after (shared machine).",
             "",
             "| artifact | kept in float | agreement plain -> target | accuracy drop plain -> target | "
             "latency plain -> target (ms, 1 image) | ratio | target met (selection) |",
             "|---|---|---|---|---|---|---|"]
    for row in result["artifacts"]:
        drop = ("-" if row["drop_before"] is None or row["drop_after"] is None
                else f"{row['drop_before'] * 100:.1f} -> {row['drop_after'] * 100:.1f} pts")
        latency = ("-" if row["latency_ms"] is None
                   else f"{row['latency_ms_plain']:.2f} -> {row['latency_ms']:.2f}")
        ratio = "-" if row["latency_ratio"] is None else f"{row['latency_ratio']:.2f}x"
        lines.append(f"| {row['artifact']} | {', '.join(row['layers']) or 'none'} | "
                     f"{row['agreement_before']:.1%} -> {row['agreement_after']:.1%} | {drop} | {latency} | {ratio} | "
                     f"{'yes' if row['met'] else 'no'} ({row['selection_before']:.1%} -> "
                     f"{row['selection_after']:.1%}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--target", type=float, default=99.5, help="top-1 agreement in percent")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("int8_target.json"))
    parser.add_argument("--calibration-study", action="store_true",
                        help="also compare ONNX calibration methods and 7- vs 8-bit weights")
    parser.add_argument("--sampling-study", action="store_true",
                        help="also compare random and class-balanced calibration images (plain int8, both formats)")
    parser.add_argument("--selection-images", type=int, default=0, metavar="N",
                        help="choose the float layers on N training images outside the calibration sample and "
                             "report on all validation images [default: half the validation images each]")
    parser.add_argument("--studies-only", action="store_true",
                        help="run only the studies asked for; keep the recorded target measurement of this checkpoint")
    args = parser.parse_args()
    runs = json.loads(args.out.read_text()) if args.out.is_file() else []

    def same(record: dict) -> bool:  # one record per checkpoint and way of choosing
        return (record["checkpoint"], record.get("selection_from_train", 0)) == \
            (args.checkpoint.name, args.selection_images)

    previous = next((r for r in runs if same(r)), {})
    if args.studies_only and not previous:
        parser.error(f"{args.out} holds no measurement of {args.checkpoint.name} to add studies to")
    result = dict(previous) if args.studies_only else \
        measure(args.checkpoint, args.target / 100, selection_images=args.selection_images)
    if args.calibration_study:
        result["calibration_study"] = calibration_study(args.checkpoint)
    if args.sampling_study:
        result["sampling_study"] = sampling_study(args.checkpoint)
    for study in ("calibration_study", "sampling_study"):
        if study in previous and study not in result:  # measured apart: keep it
            result[study] = previous[study]
    result["selection_from_train"] = args.selection_images
    runs = [r for r in runs if not same(r)] + [result]
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(render(result))


if __name__ == "__main__":
    sys.exit(main())
