"""Start a local Ray cluster, run jobs against it, tear it down: run by the Ray tests and benchmark.

Run it inside namespaces of its own (see `namespace_command`): a network with
only loopback (Ray then binds to 127.0.0.1, not the machine's interface) and a
PID namespace (every Ray process is ours; they all end with it).

    python -P ray_cluster.py SPEC.json

SPEC: {"nodes": 2, "cpus_per_node": 1, "hide": [folders the cluster's nodes must not see],
       "jobs": [{"args": [...], "stdout": path, "stderr": path}], "result": path}.
"{address}" in a job's args becomes the head's address; "{ray}" the `ray` command.
The result file gets each job's exit code and seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORT = 6379  # the namespace has its own network: nothing else listens there
OBJECT_STORE_BYTES = 100 * 2**20
RAY = str(Path(sys.executable).with_name("ray"))


def namespace_command(args: list[str]) -> list[str]:
    """`args` run in fresh network (loopback up) and PID namespaces; all of it dies with `unshare` (--kill-child)."""
    script = 'ip link set lo up && exec "$@"'
    return ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "bash", "-c", script, "ray-ns"] + args


def _start(args: list[str], hide: list[str]) -> None:
    if hide:  # the nodes' own mount namespace, with a tmpfs over each hidden folder (the driver still sees them)
        mounts = " && ".join(f"mount -t tmpfs tmpfs '{folder}'" for folder in hide)
        args = ["unshare", "--mount", "--propagation", "private", "bash", "-c", mounts + ' && exec "$@"',
                "ray-node"] + args
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")


def start_cluster(nodes: int, temp: Path, hide: list[str], cpus: int = 1) -> str:
    """A head and `nodes - 1` workers on 127.0.0.1, `cpus` CPUs each; returns the address."""
    common = ["--num-cpus", str(cpus), "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats",
              "--node-ip-address", "127.0.0.1"]
    _start([RAY, "start", "--head", "--port", str(PORT), "--temp-dir", str(temp), "--include-dashboard", "false"]
           + common, hide)
    address = f"127.0.0.1:{PORT}"
    for _ in range(nodes - 1):
        _start([RAY, "start", "--address", address] + common, hide)
    return address


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    # A token of this cluster's own, passed to its nodes and jobs by the environment (not ~/.ray/auth_token).
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    temp = Path(tempfile.mkdtemp(prefix="edl-ray-"))  # short: Ray's socket paths live below it
    results = []
    try:
        address = start_cluster(spec.get("nodes", 2), temp, spec.get("hide", []), spec.get("cpus_per_node", 1))
        for job in spec["jobs"]:
            args = [a.replace("{address}", address).replace("{ray}", RAY) for a in job["args"]]
            began = time.perf_counter()
            with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
                code = subprocess.run(args, stdout=out, stderr=err, timeout=job.get("timeout", 300)).returncode
            results.append({"returncode": code, "seconds": time.perf_counter() - began})
    finally:
        subprocess.run([RAY, "stop", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
        Path(spec["result"]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
