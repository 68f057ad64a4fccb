#!/usr/bin/env python3
"""Tiny ONNX model for checking onnxruntime under emulation against x86.

    python onnx_smoke.py make  --dir /work/pi-models   # needs `onnx` (host venv)
    python onnx_smoke.py run   --dir /work/pi-models --tag arm64   # needs onnxruntime
    python onnx_smoke.py compare --dir /work/pi-models x86 arm64
"""
import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np


def make(d: Path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.2, (8, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, (8,)).astype(np.float32)
    fw = rng.normal(0, 0.5, (8, 10)).astype(np.float32)
    fb = rng.normal(0, 0.1, (10,)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["l"]),
        helper.make_node("Softmax", ["l"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fw, "fw"), (fb, "fb"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, d / "tiny.onnx")
    x = np.load(d / "ref_inputs.npz")["x01"].transpose(0, 3, 1, 2).copy()
    np.save(d / "tiny_onnx_input.npy", x.astype(np.float32))
    print("wrote", d / "tiny.onnx")


def run(d: Path, tag: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(d / "tiny.onnx"), so, providers=["CPUExecutionProvider"])
    x = np.load(d / "tiny_onnx_input.npy")
    t = time.perf_counter()
    y = s.run(None, {"x": x})[0]
    ms = (time.perf_counter() - t) * 1e3
    np.save(d / f"tiny_onnx_out_{tag}.npy", y)
    print(f"onnxruntime {ort.__version__} on {platform.machine()}: out {y.shape}, "
          f"{ms:.1f} ms for batch {len(x)}")


def compare(d: Path, a: str, b: str):
    ya, yb = np.load(d / f"tiny_onnx_out_{a}.npy"), np.load(d / f"tiny_onnx_out_{b}.npy")
    print(f"tiny.onnx max|{a}-{b}| = {np.abs(ya - yb).max():.3e}, "
          f"top1 agree {(ya.argmax(1) == yb.argmax(1)).mean():.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "run", "compare"])
    ap.add_argument("tags", nargs="*")
    ap.add_argument("--dir", type=Path, default=Path("/work/pi-models"))
    ap.add_argument("--tag", default=platform.machine())
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.dir)
    elif a.cmd == "run":
        run(a.dir, a.tag)
    else:
        compare(a.dir, *a.tags)


if __name__ == "__main__":
    sys.exit(main())
