"""PyTorch in: edgelite's six artifacts next to the raw onnx2tf and litert-torch outputs, in one run.

    PYTHONPATH=. python benchmarks/torch_sources.py [--out /tmp/torch-bench] [--runs 200] [--held-out DIR]

Trains the small ResNet of tests/convert/test_pytorch_source.py on the sample
photos, converts its .pt2 with edgelite, and converts it again with onnx2tf
alone and with litert-torch alone (each skipped, with a line saying so, when
not importable). Every file is compared with the nn.Module in torch on the 100
validation photos (max |diff| of the logits, top-1 agreement) and timed on one
image at a time (median of --runs, after 10 warm-up runs, 2 threads; .tflite
files on the bare LiteRT interpreter, .onnx through edgelite.runtime). The raw
files take normalised NCHW input, edgelite's raw 0-255 NHWC.

With --held-out (clothing-small, by default where EDGELITE_BENCH_DATA points),
a second table: int8 top-1 agreement on its validation photos (which the net
never saw and nothing calibrated on), plain and with `--min-agreement` targets,
the layers those keep in float chosen on 100 photos per class of its train
split that examples/ does not hold.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import numpy as np


def _machine() -> str:
    info = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma") if f in flags]
    return f"{model} ({', '.join(shown)}), {os.cpu_count()} cores, {platform.python_version()}"


def _median_ms(run, runs: int) -> float:
    for _ in range(10):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    return interpreter


def _tflite_row(name: str, path: Path, images: np.ndarray, expected: np.ndarray, runs: int) -> str:
    """A .tflite on the bare interpreter, one image at a time; an NCHW file gets `images` as they are,
    an NHWC one transposed (onnx2tf makes NHWC); integer input and output are (de)quantized here."""
    interpreter = _interpreter(path)
    detail, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    layout = images if tuple(detail["shape"][1:]) == images.shape[1:] else images.transpose(0, 2, 3, 1)

    def one(image: np.ndarray) -> np.ndarray:
        scale, zero = detail["quantization"]
        if np.issubdtype(detail["dtype"], np.integer) and scale:
            image = np.round(image / scale + zero)
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(image[None]).astype(detail["dtype"]))
        interpreter.invoke()
        raw = interpreter.get_tensor(output["index"]).reshape(-1).astype(np.float32)
        scale, zero = output["quantization"]
        return (raw - zero) * scale if np.issubdtype(output["dtype"], np.integer) and scale else raw

    got = np.stack([one(image) for image in layout])
    ms = _median_ms(lambda: one(layout[0]), runs)
    return _row(name, path, got, expected, ms)


def _row(name: str, path: Path, got: np.ndarray, expected: np.ndarray, ms: float) -> str:
    diff = float(np.abs(got - expected).max())
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    return f"| {name} | {path.stat().st_size / 1024:.0f} KB | {diff:.2g} | {agreement:.0%} | {ms:.3f} |"


def _selection(held_out: Path, samples: Path, folder: Path, per_class: int = 100) -> Path:
    """Symlinks to `per_class` photos of each class of held_out/train that `samples` does not hold."""
    seen = {p.name for p in samples.rglob("*.jpg")}
    for classes in sorted(p for p in (held_out / "train").iterdir() if p.is_dir()):
        (folder / classes.name).mkdir(parents=True)
        for photo in [p for p in sorted(classes.iterdir()) if p.name not in seen][:per_class]:
            (folder / classes.name / photo.name).symlink_to(photo)
    return folder


def _target_rows(pt2: Path, samples: Path, held_out: Path, out: Path) -> list[str]:
    """int8 agreement on held_out/validation, plain and for two targets; layers chosen on held-out train photos."""
    from edgelite.convert import ConvertOptions, convert

    selection = _selection(held_out, samples, out / "selection")
    rows = []
    for target in (None, 0.99, 0.995):
        report = convert(pt2, out / f"target-{target}", ConvertOptions(
            precisions=("int8",), calibration=samples / "train", check=held_out / "validation",
            selection=selection if target else None, preprocess="imagenet", min_agreement=target,
            max_check_images=1000))
        for artifact in report.artifacts:
            chosen, parity = artifact.float_layers, artifact.parity
            if chosen is None:
                rows.append(f"| {artifact.path.name} | plain | 0 | {parity.top1_agreement:.1%} of {parity.images} "
                            f"| - | - |")
                continue
            latency = "-" if chosen.latency_ms is None else f"{chosen.latency_ms_plain:.3f} -> {chosen.latency_ms:.3f}"
            rows.append(f"| {artifact.path.name} | {target:.1%} | {len(chosen.nodes)} (tried "
                        f"{', '.join(str(k) for k, _ in chosen.tried) or '-'}) | {parity.top1_agreement:.1%} of "
                        f"{parity.images} | {chosen.selection_before:.1%} -> {chosen.selection_after:.1%} of "
                        f"{chosen.selection_images} | {latency} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgelite-torch-bench"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--held-out", type=Path,
                        default=Path(os.environ.get("EDGELITE_BENCH_DATA", "/work/shared/datasets/clothing-small")))
    args = parser.parse_args()
    import torch

    from edgelite.convert import ConvertOptions, convert
    from edgelite.runtime import load
    from tests.convert.test_pytorch_source import SAMPLES, _normalized, _pixels, train_and_save

    torch.set_num_threads(2)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    load_start = os.getloadavg()
    models = train_and_save(args.out)
    pixels, _, _ = _pixels(SAMPLES / "validation")
    nchw = _normalized(pixels)
    with torch.no_grad():
        expected = models["net"](nchw).numpy()
    nchw = nchw.numpy()
    rows = []
    report = convert(models["pt2"], args.out / "edgelite", ConvertOptions(
        calibration=SAMPLES / "train", check=SAMPLES / "validation", preprocess="imagenet"))
    for artifact in report.artifacts:
        if artifact.format == "tflite":
            rows.append(_tflite_row(f"edgelite {artifact.path.name}", artifact.path, pixels, expected, args.runs))
            continue
        model = load(artifact.path)  # onnxruntime through edgelite.runtime, as predict runs it
        got = np.concatenate([model.run(pixels[i:i + 1]) for i in range(len(pixels))])
        ms = _median_ms(lambda: model.run(pixels[:1]), args.runs)
        rows.append(_row(f"edgelite {artifact.path.name}", artifact.path, got, expected, ms))
    try:
        import onnx2tf
        import onnx2tf.onnx2tf as engine

        # onnx2tf alone fetches sample photos from the network for a fixed-batch image model: it fails offline
        engine.download_test_image_data = lambda: np.random.default_rng(0).uniform(0, 1, (20, 32, 32, 3))
        onnx2tf.convert(input_onnx_file_path=str(models["onnx"]), output_folder_path=str(args.out / "onnx2tf"),
                        non_verbose=True, not_use_onnxsim=True)
        for path in sorted((args.out / "onnx2tf").glob("*.tflite")):
            rows.append(_tflite_row(f"onnx2tf {path.name}", path, nchw, expected, args.runs))
    except Exception as exc:  # a missing or failing converter is a line in the results, not the end of the run
        rows.append(f"| onnx2tf | - | - | - | {type(exc).__name__}: {str(exc).splitlines()[0][:80]} |")
    try:
        import litert_torch

        path = args.out / "litert_torch_float32.tflite"
        litert_torch.convert(models["net"].eval(), (torch.from_numpy(nchw[:1]),)).export(str(path))
        rows.append(_tflite_row("litert-torch float32", path, nchw, expected, args.runs))
    except Exception as exc:
        rows.append(f"| litert-torch | - | - | - | {type(exc).__name__}: {str(exc).splitlines()[0][:80]} |")
    load_mid = os.getloadavg()
    targets = _target_rows(models["pt2"], SAMPLES, args.held_out, args.out) if args.held_out.is_dir() else []
    print(f"machine: {_machine()}; load average {load_start[0]:.2f} at the start, {load_mid[0]:.2f} after the "
          f"first table, {os.getloadavg()[0]:.2f} at the end")
    print("| file | size | max abs diff vs torch | top-1 agreement | median ms, 1 image |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    if targets:
        print(f"\nint8 on {args.held_out}/validation (unseen by the net, calibration and selection):")
        print("| artifact | target | ops kept in float | top-1 agreement | on the selection photos, plain -> chosen "
              "| median ms plain -> chosen |")
        print("| --- | --- | --- | --- | --- | --- |")
        print("\n".join(targets))


if __name__ == "__main__":
    main()
