"""What XNNPACK leaves out of the suite's int8 Xception 299x299, and int8 vs float32 timing (issue 12).

Lists the ops of an int8 TFLite graph that LiteRT's XNNPACK delegate does not
take (from the interpreter's op list against its DELEGATE partitions), converts
the 299 Xception to int8 before and after edgelite's RELU fold
(edgelite/convert/int8_graph.py), and times float32 and both int8 graphs with
XNNPACK in interleaved rounds, all in one run. Used by trained_int8.py.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from pathlib import Path

import numpy as np

STUDY_CALIBRATION = 40  # the 299 Xception's int8 variants: speed does not depend on calibration
TIMING_ROUNDS = 3
TIMING_SECONDS = 4.0

# Why an op of an int8 graph stays outside XNNPACK (LiteRT 2.3's delegate).
OUTSIDE_REASONS = {
    "RELU": "XNNPACK's delegate takes RELU in float32 only; an int8 RELU after a residual ADD also "
            "requantizes (input and output scales differ), so it runs on the built-in kernel",
    "SOFTMAX": "XNNPACK's delegate takes SOFTMAX in float32 only; the built-in int8 kernel runs it, "
               "on 10 values, after the last partition",
    "QUANTIZE": "the uint8 <-> int8 conversion of edgelite's default uint8 input/output, at the edges "
                "of the graph (gone with --int8-io int8)",
}


def outside_xnnpack(path: Path) -> dict:
    """XNNPACK partitions of a .tflite file with LiteRT's default resolver, and the ops it left out.

    After delegation the interpreter lists the original ops plus one DELEGATE op per
    partition; an op ran outside when its output is read by a partition (or is a
    model output) and no partition writes it.
    """
    from ai_edge_litert import interpreter as litert

    interpreter = litert.Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    partitions = [op for op in ops if op["op_name"] == "DELEGATE"]
    written = {t for op in partitions for t in op["outputs"]}
    needed = {t for op in partitions for t in op["inputs"]} | {d["index"] for d in interpreter.get_output_details()}
    outside = []
    for op in reversed([op for op in ops if op["op_name"] != "DELEGATE"]):
        if any(t in needed for t in op["outputs"]) and not any(t in written for t in op["outputs"]):
            outside.append(op)
            needed |= set(op["inputs"])

    def quantization(index: int) -> str:
        tensor = tensors[index]
        scale, zero_point = tensor["quantization"]
        return f"{tensor['dtype'].__name__} {scale:.3g}/{zero_point}" if scale else tensor["dtype"].__name__

    rows = [{"index": op["index"], "op": op["op_name"], "input": quantization(op["inputs"][0]),
             "output": quantization(op["outputs"][0]), "tensor": tensors[op["outputs"][0]]["name"][:80],
             "reason": OUTSIDE_REASONS.get(op["op_name"], "not known")} for op in reversed(outside)]
    counts = Counter(op["op_name"] for op in ops if op["op_name"] != "DELEGATE")
    return {"partitions": len(partitions), "ops": sum(counts.values()), "op_counts": dict(counts),
            "outside": rows}


def _xception_files(work: Path) -> tuple[Path, Path] | None:
    found = sorted((work / "xception").glob("xception_*.keras"), key=lambda p: p.stat().st_mtime)
    checkpoint = found[-1] if found else None
    float32 = sorted((work / "xception-artifacts").glob("*_float32.tflite"))
    return (checkpoint, float32[0]) if checkpoint and float32 else None


def xception_int8_variants(checkpoint: Path, out: Path, dataset: Path, log) -> dict[str, Path]:
    """int8 TFLite of the 299 Xception as the converter writes it, and after edgelite's RELU fold.

    "before the fold" is the graph edgelite wrote until issue 12; "RELUs folded" is
    the same quantization with each requantizing RELU folded into a copy of its
    residual ADD, as `edgelite convert` now writes it (it also equalizes separable
    convolutions, which changes scales, not the graph or its speed); the third
    adds --int8-io int8.
    """
    wanted = {"int8 before the fold": out / "int8_before.tflite", "int8, RELUs folded": out / "int8_after.tflite",
              "int8, RELUs folded, int8 I/O": out / "int8_after_io_int8.tflite"}
    if all(path.is_file() for path in wanted.values()):
        return wanted
    from edgelite.convert.int8_graph import fuse_relu_into_add
    from edgelite.convert.source import load_checkpoint
    from edgelite.lazy import import_keras
    from edgelite.runtime.folder import pixel_batches, read_folder

    tf, _ = import_keras("convert")
    source = load_checkpoint(checkpoint)
    meta = source.metadata
    paths = [item.path for item in read_folder(dataset / "train", limit=STUDY_CALIBRATION)]
    images = np.concatenate(list(pixel_batches(paths, meta.input_height, meta.input_width, meta.interpolation)))
    out.mkdir(parents=True, exist_ok=True)
    for io_type, names in ((tf.uint8, ("int8 before the fold", "int8, RELUs folded")),
                           (tf.int8, ("int8, RELUs folded, int8 I/O",))):
        log(f"converting the 299 Xception to int8 ({io_type.name} I/O, {STUDY_CALIBRATION} calibration images)")
        converter = tf.lite.TFLiteConverter.from_keras_model(source.model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = io_type
        flatbuffer = bytes(converter.convert())
        if len(names) == 2:
            wanted[names[0]].write_bytes(flatbuffer)
        wanted[names[-1]].write_bytes(fuse_relu_into_add(flatbuffer)[0])
    return wanted


def time_interleaved(files: dict[str, Path], threads: tuple[int, ...], log) -> list[dict]:
    """p50 of each (file, threads) with XNNPACK, in TIMING_ROUNDS interleaved rounds; the median round counts.

    Interleaving spreads the load of this shared machine over every variant alike.
    """
    from int8_study import time_tflite

    samples: dict[tuple[str, int], list[float]] = {}
    for round_index in range(TIMING_ROUNDS):
        for count in threads:
            for name, path in files.items():
                log(f"timing round {round_index + 1}/{TIMING_ROUNDS}: {name}, {count} thread(s)")
                timing = time_tflite(path, count, "AUTO", TIMING_SECONDS)
                samples.setdefault((name, count), []).append(timing["p50_ms"])
    return [{"variant": name, "threads": count, "p50_ms": statistics.median(values), "rounds_ms": values}
            for (name, count), values in samples.items()]


def xnnpack_study(work: Path, dataset: Path, log, threads: tuple[int, ...] = (1, 2)) -> dict:
    """Ops outside XNNPACK and int8 vs float32 timing on the suite's 299 Xception."""
    from edgelite.bench.machine import machine_info

    files = _xception_files(work)
    if files is None:
        return {"skipped": f"no Xception checkpoint and float32 artifact in {work} (run benchmarks/prepare.py)"}
    checkpoint, float32 = files
    variants = xception_int8_variants(checkpoint, work / "int8-fold", dataset, log)
    machine = machine_info()
    timed = {"float32": float32, "int8 before the fold": variants["int8 before the fold"],
             "int8, RELUs folded": variants["int8, RELUs folded"]}
    timings = time_interleaved(timed, threads, log)
    return {"checkpoint": checkpoint.name, "machine": machine, "loadavg_end": list(os.getloadavg()),
            "graphs": {name: outside_xnnpack(path) for name, path in {"float32": float32, **variants}.items()},
            "timings": timings}


# ------------------------------------------------------------------ RESULTS.md text
def _table(header: list[str], lines: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(out + ["| " + " | ".join(str(cell) for cell in line) + " |" for line in lines])


def _outside_table(graphs: dict) -> str:
    lines = []
    for name, graph in graphs.items():
        outside = Counter(op["op"] for op in graph["outside"])
        lines.append([name, graph["ops"], graph["partitions"],
                      ", ".join(f"{count} {op}" for op, count in sorted(outside.items())) or "none"])
    return _table(["graph", "ops", "XNNPACK partitions", "ops outside XNNPACK"], lines)


def _reasons(graphs: dict) -> str:
    seen = {}
    for graph in graphs.values():
        for op in graph["outside"]:
            seen.setdefault(op["op"], op)
    return "\n".join(f"- `{op}` ({row['input']} -> {row['output']}, e.g. `{row['tensor']}`): {row['reason']}."
                     for op, row in seen.items())


def _timing_lines(study: dict) -> tuple[str, list[str]]:
    p50 = {(t["variant"], t["threads"]): t["p50_ms"] for t in study["timings"]}
    threads = sorted({t["threads"] for t in study["timings"]})
    variants = list(dict.fromkeys(t["variant"] for t in study["timings"]))
    lines = [[v] + [f"{p50[(v, n)]:.1f}" for n in threads]
             + [f"{p50[('float32', n)] / p50[(v, n)]:.2f}x" for n in threads] for v in variants]
    header = ["TFLite, XNNPACK"] + [f"p50 ms {n} thr" for n in threads] + [f"vs float32 {n} thr" for n in threads]
    summary = []
    for count in threads:
        ratio = p50[("float32", count)] / p50[("int8, RELUs folded", count)]
        before = p50[("float32", count)] / p50[("int8 before the fold", count)]
        summary.append(f"{count} thread(s): int8 {ratio:.2f}x float32 (before the fold {before:.2f}x)")
    return _table(header, lines), summary


def _ratio(study: dict, threads: int) -> float:
    p50 = {(t["variant"], t["threads"]): t["p50_ms"] for t in study["timings"]}
    return p50[("float32", threads)] / p50[("int8, RELUs folded", threads)]


def _met(condition: bool) -> str:
    return "**met**" if condition else "**not met**"


def render_xnnpack(study: dict) -> str:
    """The "What XNNPACK leaves out" subsection of RESULTS.md."""
    table, summary = _timing_lines(study)
    machine = study["machine"]
    parts = [
        "### What XNNPACK leaves out of the int8 Xception 299x299",
        _outside_table(study["graphs"]),
        "Why each op runs outside:\n\n" + _reasons(study["graphs"]),
        "The 11 RELUs start Xception's blocks 3-13: each reads a residual ADD whose output also feeds the next "
        "ADD, so the converter cannot fuse it and writes a standalone int8 RELU between two partitions. "
        "`edgelite convert` now folds each one into a copy of its ADD with a fused ReLU, written at the RELU's "
        "output scale (`edgelite/convert/int8_graph.py`, on by default for int8): the same function with one "
        "rounding fewer, and XNNPACK takes the whole graph. The ops left outside sit at the two ends of the graph "
        "and split nothing.",
        f"Timing, same run ({TIMING_ROUNDS} interleaved rounds of {TIMING_SECONDS:g} s per row, median round; "
        f"random input; {machine['cpu']}, flags {', '.join(machine['cpu_flags'])}; load average "
        f"{machine['loadavg'][0]:.2f} at the start, {study['loadavg_end'][0]:.2f} at the end):\n\n" + table,
        "Result: " + "; ".join(summary) + f". Target int8 >= 1.5x float32 at 1 thread: "
        + _met(_ratio(study, 1) >= 1.5) + ". "
        + ("This CPU has AVX-512 VNNI (`vpdpbusd`: 64 uint8 x int8 multiply-adds per instruction), which "
           "XNNPACK's int8 kernels can use here; the host of the int8 study below had AVX2 only."
           if "avx512_vnni" in machine["cpu_flags"] else
           "This CPU has no int8 dot-product instruction (no VNNI): see the int8 study below."),
    ]
    return "\n\n".join(parts)
