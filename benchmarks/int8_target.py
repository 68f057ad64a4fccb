"""Issue 18: int8 artifacts converted to an agreement target (`convert --min-agreement`), and the price.

Converts a trained checkpoint to int8 TFLite and ONNX twice in one run (plain,
then with `--min-agreement`), calibrating on the training images and splitting
the validation images into a selection half (chooses the float layers) and a
reporting half (the agreement and accuracy shown). Records per artifact the
layers kept in float, agreement and accuracy before and after, and the latency
of plain vs chosen artifact timed in turn by convert itself, with the machine
(CPU model and flags, load average).

    python benchmarks/int8_target.py CHECKPOINT [--target 99.5] [--out benchmarks/int8_target.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def measure(checkpoint: Path, target: float, data: Path = DATASET) -> dict:
    """Plain int8 and int8 to `target` (a fraction) of `checkpoint`, with what each costs."""
    from edgelite.convert import ConvertOptions, convert

    options = ConvertOptions(precisions=("int8",), calibration=data / "train", check=data / "validation",
                             max_check_images=CHECK_IMAGES, min_agreement=target)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="edgelite-int8-target-") as out:
        report = convert(checkpoint, Path(out), options)
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
            "machine": machine(), "load_after": os.getloadavg(), "artifacts": rows}


def _drop(reference, accuracy):
    return None if reference is None or accuracy is None else reference - accuracy


def render(result: dict) -> str:
    """A RESULTS.md table of one measurement."""
    m = result["machine"]
    lines = [f"`{result['checkpoint']}`, target {result['target']:.1%} top-1 agreement; layers chosen on "
             f"{result['selection_images']}; reported on {result['check_images']}. Convert took "
             f"{result['seconds']} s. Machine: {m.get('cpu')}, {m['cores']} cores, flags {', '.join(m.get('flags', []))}; "
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
    args = parser.parse_args()
    result = measure(args.checkpoint, args.target / 100)
    runs = json.loads(args.out.read_text()) if args.out.is_file() else []
    runs = [r for r in runs if r["checkpoint"] != result["checkpoint"]] + [result]
    args.out.write_text(json.dumps(runs, indent=2) + "\n")
    print(render(result))


if __name__ == "__main__":
    sys.exit(main())
