"""Stage of the suite for issue 12: int8 on a trained Xception-style model, and what XNNPACK leaves out.

1. Trains `xception_mini` (edgelite's registry: entry convolutions, separable
   blocks with batch norm and strided 1x1 residual adds, global pooling) from
   scratch on clothing-small with `edgelite train`, converts it to every artifact
   with `edgelite.convert` and reads each artifact's top-1 agreement with the
   Keras model and its accuracy on all 341 validation images.
2. Runs `edgelite.convert.explain.explain_int8` on it: the int8 layers with the
   largest error, from LiteRT's and onnxruntime's quantization debuggers.
3. On the suite's 299x299 Xception: which int8 TFLite ops run outside XNNPACK,
   before and after edgelite's RELU fold (edgelite/convert/int8_graph.py), and
   int8 vs float32 timings with LiteRT, all in this run.

`run_trained_int8(work, log)` reuses what the work folder already holds;
`render_trained_int8(data)` gives the RESULTS.md section. Alone:
`python benchmarks/trained_int8.py [WORK]` writes benchmarks/trained_int8.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from xnnpack_study import outside_xnnpack, render_xnnpack, xnnpack_study

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATASET = Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small"))
FAMILY = "xception_mini"
EPOCHS = 20
AUGMENT = "course"
CALIBRATION_IMAGES = 500  # from the training images; convert's default cap
CHECK_IMAGES = 400  # more than the 341 validation images: all of them
TARGET_AGREEMENT, TARGET_DROP = 0.99, 0.01


def log_to_stderr(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ 1. the trained model
def _best(run: Path, family: str) -> Path | None:
    history = run / "history.json"
    if history.is_file():
        name = json.loads(history.read_text()).get("best_checkpoint")
        if name and (run / name).is_file():
            return run / name
    found = sorted(run.glob(f"{family}_*.keras"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def train_mini(work: Path, log) -> tuple[Path, dict]:
    """Train xception_mini with `edgelite train` (or reuse the run in WORK/xception_mini)."""
    run = work / FAMILY
    history = run / "history.json"
    if not (history.is_file() and json.loads(history.read_text()).get("epochs")
            and len(json.loads(history.read_text())["epochs"]) >= EPOCHS):
        command = [sys.executable, "-m", "edgelite", "train", FAMILY, "--data", str(DATASET), "--out", str(run),
                   "--epochs", str(EPOCHS), "--augment", AUGMENT]
        if (run / "resume.keras").is_file():
            command.append("--resume")
        log("running " + " ".join(command[1:]))
        subprocess.run(command, cwd=REPO, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                       stdout=subprocess.DEVNULL)
    else:
        log(f"reusing the {FAMILY} run in {run}")
    checkpoint = _best(run, FAMILY)
    if checkpoint is None:
        raise RuntimeError(f"edgelite train {FAMILY} left no checkpoint in {run}")
    return checkpoint, json.loads(history.read_text())


def convert_mini(checkpoint: Path, out: Path, log, equalize: bool = True) -> dict:
    """The trained model's artifacts, checked on all validation images (or the manifest already there).

    With `equalize` (edgelite's default) every artifact; without, the int8 ones only: the "before" of the fix.
    """
    manifest = out / "manifest.json"
    if not manifest.is_file():
        from edgelite.convert import ConvertOptions, convert

        log(f"converting {checkpoint.name} (calibration: {CALIBRATION_IMAGES} training images, "
            f"equalize={equalize})")
        convert(checkpoint, out, ConvertOptions(
            precisions=("float32", "float16", "dynamic", "int8") if equalize else ("int8",),
            calibration=DATASET / "train", check=DATASET / "validation", max_calibration_images=CALIBRATION_IMAGES,
            max_check_images=CHECK_IMAGES, equalize=equalize))
    else:
        log(f"reusing artifacts in {out}")
    return json.loads(manifest.read_text())


def artifact_rows(manifest: dict) -> list[dict]:
    rows = []
    for entry in manifest["artifacts"]:
        parity = entry["parity"]
        rows.append({"file": entry["file"], "format": entry["format"], "precision": entry["precision"],
                     "size_bytes": entry["size_bytes"], "images": parity["images"],
                     "agreement": parity["top1_agreement"], "accuracy": parity["accuracy"],
                     "keras_accuracy": parity["reference_accuracy"],
                     "drop": parity["reference_accuracy"] - parity["accuracy"],
                     "max_abs_diff": parity["max_abs_diff"]})
    return rows


def model_facts(checkpoint: Path) -> dict:
    """MACs and parameters, in a fresh process so TensorFlow does not stay in this one."""
    code = ("import json, sys; from pathlib import Path; from edgelite.convert.source import load_checkpoint; "
            "from edgelite.bench.macs import count_macs; m = load_checkpoint(Path(sys.argv[1])).model; "
            "print(json.dumps({'macs': count_macs(m), 'params': m.count_params()}))")
    done = subprocess.run([sys.executable, "-c", code, str(checkpoint)], capture_output=True, text=True,
                          check=True, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return json.loads(done.stdout.strip().splitlines()[-1])


def explain(checkpoint: Path, cache: Path, log, equalize: bool = True) -> dict:
    """The int8 layers with the largest error (edgelite.convert.explain), cached beside the artifacts."""
    if cache.is_file():
        return json.loads(cache.read_text())
    from edgelite.convert import ConvertOptions
    from edgelite.convert.explain import explain_int8

    log(f"explaining int8 (equalize={equalize}): LiteRT's and onnxruntime's quantization debuggers")
    started = time.perf_counter()
    result = explain_int8(checkpoint, ConvertOptions(calibration=DATASET / "train", equalize=equalize,
                                                     max_calibration_images=CALIBRATION_IMAGES))
    data = {**result.to_dict(count=10), "seconds": time.perf_counter() - started}
    cache.write_text(json.dumps(data, indent=1) + "\n")
    return data


# ------------------------------------------------------------------ the stage
def run_trained_int8(work: Path, log=log_to_stderr) -> dict:
    """Train, convert, explain and measure; reuses the checkpoint, artifacts and variants in `work`."""
    from edgelite.bench.machine import machine_info

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    machine = machine_info()
    checkpoint, history = train_mini(work, log)
    manifest = convert_mini(checkpoint, work / f"{FAMILY}-artifacts", log)
    rows = artifact_rows(manifest)
    int8_tflite = next(work / f"{FAMILY}-artifacts" / r["file"] for r in rows
                       if r["format"] == "tflite" and r["precision"] == "int8")
    data = {
        "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine,
        "model": {"family": FAMILY, "checkpoint": checkpoint.name, "epochs": len(history["epochs"]),
                  "augment": AUGMENT, "best_val_accuracy": history["best_val_accuracy"],
                  "train_seconds": sum(e.get("seconds", 0.0) for e in history["epochs"]),
                  "majority_share": _majority_share(DATASET / "validation"), **model_facts(checkpoint)},
        "calibration_images": CALIBRATION_IMAGES,
        "artifacts": rows,
        "before_fix": {
            "artifacts": artifact_rows(convert_mini(checkpoint, work / f"{FAMILY}-artifacts-no-equalize", log,
                                                    equalize=False)),
            "explain": explain(checkpoint, work / f"{FAMILY}-explain-no-equalize.json", log, equalize=False)},
        "int8_graph": outside_xnnpack(int8_tflite),
        "explain": explain(checkpoint, work / f"{FAMILY}-explain.json", log),
        "xnnpack": xnnpack_study(work, DATASET, log),
    }
    data["loadavg_end"] = list(os.getloadavg())
    data["duration_min"] = (time.perf_counter() - started) / 60
    return data


def _majority_share(folder: Path) -> float:
    counts = [sum(1 for p in d.iterdir() if p.is_file()) for d in folder.iterdir() if d.is_dir()]
    return max(counts) / sum(counts)


# ------------------------------------------------------------------ RESULTS.md section
def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _table(header: list[str], lines: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(out + ["| " + " | ".join(str(cell) for cell in line) + " |" for line in lines])


def _met(condition: bool) -> str:
    return "**met**" if condition else "**not met**"


def _int8_targets(rows: list[dict]) -> list[str]:
    lines = []
    for fmt in ("tflite", "onnx"):
        row = next((r for r in rows if r["format"] == fmt and r["precision"] == "int8"), None)
        if row is None:
            continue
        met = row["agreement"] >= TARGET_AGREEMENT and row["drop"] <= TARGET_DROP
        lines.append(f"- {'TFLite' if fmt == 'tflite' else 'ONNX'} int8 (`{row['file']}`): top-1 agreement "
                     f"**{_pct(row['agreement'])}** with the Keras model (target >= 99%), accuracy "
                     f"{_pct(row['accuracy'])} vs {_pct(row['keras_accuracy'])} = drop **{row['drop'] * 100:+.1f} "
                     f"points** (target <= 1): {_met(met)}.")
    return lines


def _explain_tables(explain: dict) -> str:
    parts = []
    for fmt, title, last in (("tflite", "TFLite (QuantizationDebugger)", "rmse/scale"),
                             ("onnx", "ONNX (qdq_loss_debug)", "SQNR vs float dB")):
        layers = explain["layers"].get(fmt, [])[:5]
        if not layers:
            continue
        lines = [[f"`{layer['layer']}`", layer["op"], f"{layer['sqnr_db']:.1f}",
                  f"{layer['rmse_per_step']:.2f}" if fmt == "tflite" and layer.get("rmse_per_step") is not None else
                  f"{layer['accumulated_sqnr_db']:.1f}" if layer.get("accumulated_sqnr_db") is not None else "-"]
                 for layer in layers]
        parts.append(f"{title}, the 5 layers with the lowest SQNR:\n\n" + _table(["layer", "op", "SQNR dB", last],
                                                                                lines))
    return "\n\n".join(parts)


# Measured while choosing the fix (same checkpoint, this machine, 341 validation images), not re-run by the suite.
TRIED = ("all 3068 training images for calibration instead of 500, without equalization: TFLite 97.1%, "
         "ONNX 98.0% (wider ranges); with equalization, ONNX variants: percentile calibration (99.999) 97.4%, "
         "symmetric int8 activations 98.0%, int8 activations and weights (S8S8) 98.5%, uint8 weights (U8U8) 98.8%, "
         "8-bit instead of 7-bit weights (no reduce_range) 99.1% (but it saturates the int16 sums of "
         "onnxruntime's AVX2 kernels on CPUs without VNNI, so it is not the default), the worst depthwise layer "
         "kept in float 97.4%, the three worst 98.5%")


def _worst_sqnr(explain: dict, fmt: str) -> str:
    layers = explain["layers"].get(fmt, [])
    return f"{layers[0]['sqnr_db']:.1f} dB (`{layers[0]['layer']}`)" if layers else "-"


def _fix_section(data: dict) -> str:
    before, after = data["before_fix"], data["artifacts"]
    lines = []
    for fmt in ("tflite", "onnx"):
        old = next(r for r in before["artifacts"] if r["format"] == fmt)
        new = next(r for r in after if r["format"] == fmt and r["precision"] == "int8")
        lines.append([f"{'TFLite' if fmt == 'tflite' else 'ONNX'} int8", _pct(old["agreement"]),
                      f"{old['drop'] * 100:+.1f}", _worst_sqnr(before["explain"], fmt), _pct(new["agreement"]),
                      f"{new['drop'] * 100:+.1f}", _worst_sqnr(data["explain"], fmt)])
    return "\n\n".join([
        "**The fix: equalized separable convolutions.** Without it (the converters' defaults, 500 calibration "
        "images, per-channel weights), both int8 artifacts missed 99% agreement, and both debuggers put the "
        "depthwise outputs of the separable convolutions at the top of their lists: the tensor between a "
        "SeparableConv2D's depthwise and pointwise halves is quantized with one scale for all channels, and "
        "without a batch norm there its channels span very different ranges. `edgelite convert` now rescales "
        "each of those channels to the full range before int8 and folds the inverse into the pointwise weights "
        "(cross-layer equalization, `edgelite/convert/equalize.py`; the float function is unchanged, "
        "`ConvertOptions(equalize=False)` turns it off). Before and after, same run:",
        _table(["artifact", "agreement before", "drop before", "worst layer before", "agreement after",
                "drop after", "worst layer after"], lines),
        f"Tried and not kept: {TRIED}. The images that flip are near-ties for the Keras model (top-2 score "
        "margins 0.008-0.06; ten validation images have a margin under 0.05) and one image is 0.29 points of "
        "agreement, so agreement moves by about a point between settings; per-layer SQNR is the steadier "
        "measure of the fix.",
    ])


def render_trained_int8(data: dict) -> str:
    """The RESULTS.md section of this stage (starts with its own `##` heading)."""
    model, rows = data["model"], data["artifacts"]
    machine = data["machine"]
    flags = ", ".join(machine["cpu_flags"])
    images = rows[0]["images"] if rows else 0
    speed_only = Path(data.get("xnnpack", {}).get("checkpoint") or "xception_*").stem
    parts = [
        "## A trained Xception-style model in int8 (issue 12)",
        f"**Which rows above measure speed only**: every `{speed_only}*` row of the Xception 299x299 table. "
        "That Xception has a random frozen base (ImageNet weights cannot be downloaded here), its ten scores "
        "differ by ~1e-3, so its accuracy and agreement columns (and the agreement in target 1) say nothing "
        "about int8 on a trained network. Fidelity is measured here, on a model trained for real.",
        f"**Model**: `{model['family']}` from edgelite's registry (`edgelite train {model['family']} --epochs "
        f"{model['epochs']} --augment {model['augment']}`): Xception's parts at {model['macs'] / 1e6:.0f} MMACs and "
        f"{model['params'] / 1e6:.2f} M parameters: entry convolutions (16 and 32 filters, batch norm, ReLU), four "
        "downsampling blocks of two depthwise-separable convolutions with batch norm and a strided 1x1 "
        "convolution on the residual path (48, 96, 192, 256 filters), one middle block with an identity residual, "
        "an exit separable convolution (320), global average pooling, dropout, softmax; 112x112 input. Trained "
        f"from scratch on the 3068 clothing-small training images in {model['train_seconds'] / 60:.0f} min "
        f"on this shared 2-core CPU; best validation accuracy **{model['best_val_accuracy']:.1%}** "
        f"(`{model['checkpoint']}`; the majority class is {model['majority_share']:.1%} of the validation set). "
        f"int8 calibration: {data['calibration_images']} training images; checked on all {images} validation "
        "images.",
        _table(["artifact", "MB", "top-1 agreement w/ Keras", "accuracy", "Keras accuracy", "drop (points)",
                "max \\|score diff\\|"],
               [[f"`{r['file']}`", f"{r['size_bytes'] / 2**20:.2f}", _pct(r["agreement"]), _pct(r["accuracy"]),
                 _pct(r["keras_accuracy"]), f"{r['drop'] * 100:+.1f}", f"{r['max_abs_diff']:.3g}"] for r in rows]),
        "Targets (issue 12, same run):\n\n" + "\n".join(_int8_targets(rows)),
    ]
    if data.get("before_fix"):
        parts.append(_fix_section(data))
    explain = data["explain"]
    parts.append(
        f"**Where int8 loses** (`edgelite convert --explain-int8`, {explain['images']} calibration images, "
        f"{explain.get('seconds', 0):.0f} s): per layer, SQNR = 20 log10(|float| / |float - int8|) of that layer's "
        "own output (lower is worse, ~6 dB per bit); TFLite's `rmse/scale` is the error in quantization steps "
        "(0.29 is plain rounding).\n\n" + _explain_tables(explain))
    graph = data["int8_graph"]
    parts.append(f"The trained model's int8 TFLite runs in **{graph['partitions']} XNNPACK partition(s)**; outside: "
                 + (", ".join(f"{op['op']}" for op in graph["outside"]) or "nothing") + ".")
    study = data.get("xnnpack", {})
    if study.get("skipped"):
        parts.append(f"XNNPACK study of the 299 Xception: not run ({study['skipped']}).")
        return "\n\n".join(parts) + "\n"
    parts.append(render_xnnpack(study))
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    result = run_trained_int8(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/edgelite-benchmarks"))
    (HERE / "trained_int8.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(render_trained_int8(result))
