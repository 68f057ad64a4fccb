"""Local `predict` vs `predict --ray` on one node and on two local nodes (issue 19), in one run.

    python benchmarks/ray_predict.py --model MODEL.tflite [--images DIR] [--count 2000] [--out ray_predict.json]

Everything that starts Ray runs in a network namespace with only loopback and a
PID namespace of its own (root; see tests/integrations/ray_cluster.py). The two
"nodes" are two Ray nodes on this one machine: they share its cores, so two nodes
measure Ray's overhead, not a speed-up. Per run it records images/s (whole
command, and steady: from the first result to the last), Ray's overhead per
image against local predict at the same CPU count, and each actor's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integrations.ray_cluster import namespace_command  # noqa: E402

HELPER = ROOT / "tests" / "integrations" / "ray_cluster.py"
EDGELITE = [sys.executable, "-P", "-m", "edgelite"]


def job_code(model: str, paths_file: str, out: str) -> str:
    """A driver that times the library path and samples the actors' peak RSS from /proc."""
    return f"""
import json, sys, threading, time
from pathlib import Path
from edgelite.integrations.ray import RayOptions, connect, iter_predictions, predict_dataset, default_actors
address = sys.argv[1] if len(sys.argv) > 1 else None
began = time.perf_counter()
connect(address)
joined = time.perf_counter()
peaks, stop = {{}}, threading.Event()
def sample():
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            try:
                title = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
                if title.startswith(b"ray::MapWorker") and b"Predictor" in title:
                    for line in (entry / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peaks[entry.name] = max(peaks.get(entry.name, 0), int(line.split()[1]) // 1024)
            except OSError:
                pass
        time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()
paths = Path({paths_file!r}).read_text().splitlines()
actors = default_actors(1)
first = None
count = 0
# Rows handed over 16 at a time (the CLI takes 256): the first one comes as soon as a batch is done.
for result in iter_predictions(predict_dataset(paths, {model!r}, RayOptions(batch_size=16)), batch_size=16):
    count += 1
    first = first or time.perf_counter()
end = time.perf_counter()
stop.set()
Path({out!r}).write_text(json.dumps({{"images": count, "actors": actors, "connect_s": joined - began,
    "first_row_s": first - joined, "total_s": end - began, "steady_per_s": (count - 1) / (end - first),
    "actor_peak_rss_mb": sorted(peaks.values())}}))
"""


def run_in_namespace(tmp: Path, name: str, nodes: int, cpus: int, jobs: list[dict]) -> list[dict]:
    for job in jobs:
        job.update(stdout=str(tmp / f"{name}-{job['name']}.out"), stderr=str(tmp / f"{name}-{job['name']}.err"))
    spec = {"nodes": nodes, "cpus_per_node": cpus, "jobs": jobs, "result": str(tmp / f"{name}.json")}
    (tmp / f"{name}-spec.json").write_text(json.dumps(spec))
    done = subprocess.run(namespace_command([sys.executable, "-P", str(HELPER), str(tmp / f"{name}-spec.json")]),
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"{name}: {done.stderr[-2000:]}")
    return json.loads((tmp / f"{name}.json").read_text())


def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((l.split(":", 1)[1].strip() for l in info if l.startswith("model name")), "unknown")
    flags = next((l.split(":", 1)[1].split() for l in info if l.startswith("flags")), [])
    wanted = [f for f in ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return {"cpu": model, "cpus": os.cpu_count(), "flags": wanted, "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--images", type=Path, default=Path("/work/shared/datasets/clothing-small"))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "ray_predict.json")
    args = parser.parse_args()
    from edgelite.runtime import list_images

    paths = [str(p) for p in list_images(args.images)][:args.count]
    tmp = Path(tempfile.mkdtemp(prefix="edl-ray-bench-"))
    (tmp / "paths.txt").write_text("\n".join(paths))
    model = str(args.model.resolve())
    report: dict = {"machine_start": machine(), "model": args.model.name, "images": len(paths)}
    cli = EDGELITE + ["predict", model, "-", "--jsonl", "--out"]
    (tmp / "one.txt").write_text(paths[0])
    for name, extra in (("local_2cpu", []), ("local_1cpu", ["--threads", "1", "--workers", "1"])):
        for count, listing in ((1, "one.txt"), (len(paths), "paths.txt")):  # one image: the fixed cost
            with open(tmp / listing) as stdin:  # local predict reads the same list from stdin
                began = time.perf_counter()
                subprocess.run(cli + [str(tmp / "local.jsonl")] + extra, stdin=stdin, stdout=subprocess.DEVNULL,
                               check=False)
                report[f"{name}_{count}_s"] = time.perf_counter() - began
        report[f"{name}_steady_per_s"] = (len(paths) - 1) / (report[f"{name}_{len(paths)}_s"]
                                                              - report[f"{name}_1_s"])
    library = {"name": "library", "args": [sys.executable, "-P", "-c",
                                           job_code(model, str(tmp / "paths.txt"), str(tmp / "lib.json")),
                                           "{address}"]}
    ray_cli = {"name": "cli", "args": ["bash", "-c", f"{' '.join(EDGELITE)} predict {model} - --jsonl --out "
                                                     f"{tmp / 'ray.jsonl'} --ray {{address}} < {tmp / 'paths.txt'}"]}
    for name, nodes, cpus in (("one_node_2cpu", 1, 2), ("one_node_1cpu", 1, 1), ("two_nodes_1cpu_each", 2, 1)):
        results = run_in_namespace(tmp, name, nodes, cpus, [dict(library), dict(ray_cli)])
        report[name] = json.loads((tmp / "lib.json").read_text()) | {"cli_s": results[1]["seconds"],
                                                                    "cli_exit": results[1]["returncode"]}
    report["machine_end"] = machine()
    shutil.rmtree(tmp, ignore_errors=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
