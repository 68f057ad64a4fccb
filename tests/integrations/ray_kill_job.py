"""A Ray job whose actor process is killed (SIGKILL, by PID) while it classifies a batch.

    python -P ray_kill_job.py ADDRESS MODEL PATHS.txt OUT.json

Runs inside the test cluster's PID namespace, so every process in /proc is
the cluster's. Writes {"killed": pid, "title": ..., "rows_before_kill": n, "rows": [...]}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from edgelite.integrations.ray import RayOptions, connect, iter_predictions, predict_dataset

BUSY = ".submit"  # Ray titles an actor process "ray::MapWorker(...).submit" while it runs a batch


def busy_actor() -> tuple[int, str] | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if title.startswith("ray::MapWorker") and "Predictor" in title and title.endswith(BUSY):
                return int(entry.name), title
    return None


def main(address: str, model: str, paths_file: str, out: str) -> None:
    paths = Path(paths_file).read_text().splitlines()
    connect(address)
    done = 0
    report: dict = {"killed": None}

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = busy_actor()
            if found:
                os.kill(found[0], signal.SIGKILL)
                report.update(killed=found[0], title=found[1], rows_before_kill=done)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    rows = []
    for result in iter_predictions(predict_dataset(paths, model, RayOptions(top_k=3, batch_size=2, actors=2))):
        rows.append(result.to_dict())
        done += 1
    killer.join(timeout=1)
    report["rows"] = rows
    report["killed_is_gone"] = report["killed"] is not None and not Path(f"/proc/{report['killed']}").exists()
    Path(out).write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:5])
