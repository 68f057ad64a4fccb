#!/usr/bin/env python3
"""Run every .tflite in a folder on the reference images; record outputs and errors.

Works with whichever interpreter the running Python has (no TensorFlow needed):
  ai_edge_litert.interpreter  (LiteRT, numpy 2)
  tflite_runtime.interpreter  (old tflite-runtime, numpy<2)
  tensorflow.lite             (fallback)

    python run_tflite.py --models /work/pi-models --tag x86 [--backend auto]

Writes <models>/results_<tag>.json (per model: ok / exact error, op summary,
ms per invoke) and <models>/outputs_<tag>.npz (float outputs, one array per model).
Compare two tags with:  python run_tflite.py --models DIR --compare x86 arm64
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def get_interpreter_cls(backend: str):
    tried = []
    order = {"auto": ["litert", "tflite_runtime", "tf"]}.get(backend, [backend])
    for b in order:
        try:
            if b == "litert":
                from ai_edge_litert.interpreter import Interpreter
                import ai_edge_litert
                ver = getattr(ai_edge_litert, "__version__", "?")
            elif b == "tflite_runtime":
                from tflite_runtime.interpreter import Interpreter
                import tflite_runtime
                ver = tflite_runtime.__version__
            elif b == "tf":
                import tensorflow as tf
                Interpreter = tf.lite.Interpreter
                ver = tf.__version__
            else:
                raise ValueError(b)
            return b, ver, Interpreter
        except ImportError as e:
            tried.append(f"{b}: {e}")
    raise SystemExit("no TFLite interpreter importable: " + "; ".join(tried))


def quantize(x, detail):
    dt = detail["dtype"]
    if dt in (np.float32, np.float16):
        return x.astype(dt)
    scale, zp = detail["quantization"]
    if scale == 0:
        return x.astype(dt)
    info = np.iinfo(dt)
    return np.clip(np.round(x / scale + zp), info.min, info.max).astype(dt)


def dequantize(y, detail):
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32)
    scale, zp = detail["quantization"]
    return (y.astype(np.float32) - zp) * (scale if scale else 1.0)


def run_all(models: Path, tag: str, backend: str, repeat: int, pattern: str):
    name, ver, Interpreter = get_interpreter_cls(backend)
    ref = np.load(models / "ref_inputs.npz")
    manifest = json.loads((models / "manifest.json").read_text())
    results = {"backend": name, "backend_version": ver, "numpy": np.__version__,
               "machine": platform.machine(), "python": platform.python_version(),
               "models": {}}
    outputs = {}
    for f in sorted(models.glob(pattern)):
        if f.suffix != ".tflite":
            continue
        kind = f.name.split("__")[0]
        x = ref["x255"] * manifest["models"][kind]["input_scale"]
        rec = {}
        t0 = time.perf_counter()
        try:
            it = Interpreter(model_path=str(f), num_threads=1)
            it.allocate_tensors()
        except Exception as e:
            rec = {"ok": False, "stage": "load",
                   "error": f"{type(e).__name__}: {e}".strip()}
            results["models"][f.name] = rec
            print(f"{f.name:40s} LOAD FAILED: {rec['error'].splitlines()[0]}", flush=True)
            continue
        rec["load_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        ind, outd = it.get_input_details()[0], it.get_output_details()[0]
        rec["io"] = [str(np.dtype(ind["dtype"])), str(np.dtype(outd["dtype"]))]
        ys = []
        try:
            times = []
            for i in range(len(x)):
                it.set_tensor(ind["index"], quantize(x[i:i + 1], ind))
                t1 = time.perf_counter()
                for _ in range(repeat):
                    it.invoke()
                times.append((time.perf_counter() - t1) / repeat)
                ys.append(dequantize(it.get_tensor(outd["index"]), outd)[0])
        except Exception as e:
            rec.update({"ok": False, "stage": "invoke",
                        "error": f"{type(e).__name__}: {e}".strip()})
            results["models"][f.name] = rec
            print(f"{f.name:40s} INVOKE FAILED: {rec['error'].splitlines()[0]}", flush=True)
            continue
        y = np.stack(ys)
        outputs[f.name] = y
        keras = np.load(models / f"{kind}__keras_out.npy")
        rec.update({"ok": True, "ms_per_invoke": round(float(np.median(times)) * 1e3, 3),
                    "max_abs_vs_keras": float(np.abs(y - keras).max()),
                    "top1_agree_vs_keras": float((y.argmax(1) == keras.argmax(1)).mean())})
        results["models"][f.name] = rec
        print(f"{f.name:40s} ok  {rec['ms_per_invoke']:8.3f} ms  "
              f"max|d| vs keras {rec['max_abs_vs_keras']:.2e}  "
              f"top1 agree {rec['top1_agree_vs_keras']:.2f}", flush=True)
    (models / f"results_{tag}.json").write_text(json.dumps(results, indent=1))
    np.savez(models / f"outputs_{tag}.npz", **outputs)
    return results


def compare(models: Path, a: str, b: str):
    ra = np.load(models / f"outputs_{a}.npz")
    rb = np.load(models / f"outputs_{b}.npz")
    worst = 0.0
    for k in sorted(set(ra.files) | set(rb.files)):
        if k not in ra.files or k not in rb.files:
            print(f"{k:40s} only in {a if k in ra.files else b}")
            continue
        d = float(np.abs(ra[k] - rb[k]).max())
        agree = float((ra[k].argmax(1) == rb[k].argmax(1)).mean())
        worst = max(worst, d)
        print(f"{k:40s} max|{a}-{b}| = {d:.3e}   top1 agree {agree:.2f}")
    print(f"worst max abs diff: {worst:.3e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="/work/pi-models", type=Path)
    ap.add_argument("--tag", default=platform.machine())
    ap.add_argument("--backend", default="auto",
                    choices=["auto", "litert", "tflite_runtime", "tf"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--glob", default="*.tflite")
    ap.add_argument("--compare", nargs=2, metavar=("TAG_A", "TAG_B"))
    args = ap.parse_args(argv)
    if args.compare:
        compare(args.models, *args.compare)
    else:
        run_all(args.models, args.tag, args.backend, args.repeat, args.glob)


if __name__ == "__main__":
    sys.exit(main())
