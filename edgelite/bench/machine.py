"""What a benchmark ran on: the machine, the library versions, and its measured float32 peak."""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

VERSIONED = ("edgelite", "numpy", "pillow", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow-cpu",
             "tensorflow", "keras", "psutil")
CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp")


def versions() -> dict[str, str]:
    """Installed versions of the packages a benchmark depends on (absent ones left out)."""
    found = {}
    for package in VERSIONED:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return model, [flag for flag in CPU_FLAGS if flag in flags]


def machine_info() -> dict[str, Any]:
    """CPU model and SIMD flags, cores, memory, OS, Python and the load average now."""
    model, flags = _cpuinfo()
    info: dict[str, Any] = {
        "cpu": model, "cpu_flags": flags, "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "architecture": platform.machine(), "os": platform.platform(), "python": platform.python_version(),
        "loadavg": list(os.getloadavg()),
    }
    try:
        import psutil
        info["memory_mb"] = round(psutil.virtual_memory().total / 2**20)
    except ImportError:
        info["memory_mb"] = None
    return info


def float32_peak_gflops(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """The best float32 GFLOP/s of a (size x size) numpy matmul, with numpy's BLAS threads.

    A dense matmul is about as close to the CPU's float32 limit as software
    gets, so a model's fraction of it shows how far it is from the hardware.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # the first call pays for BLAS thread start-up
    best = float("inf")
    for _ in range(repeats):
        begin = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - begin)
    return {"gflops": 2.0 * size**3 / best / 1e9, "matmul_size": size, "seconds": best}
