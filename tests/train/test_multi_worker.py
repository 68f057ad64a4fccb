"""Several machines, for real: two worker processes on 127.0.0.1 train one model together."""

import json
import os
import socket
import subprocess
import sys
from contextlib import ExitStack

import pytest

from edgelite.train.data import scan_dataset
from edgelite.train.stream import READ_LOG_VARIABLE
from tests.conftest import make_dataset

pytest.importorskip("tensorflow")


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def test_two_workers_read_disjoint_shards_and_only_the_chief_writes(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 7, "validation": 3})
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    # Each worker gets its own --out: a run folder other workers share in real use, here
    # separate so that anything the non-chief wrote would show.
    outs = [tmp_path / "run", tmp_path / "run-of-worker-1"]
    temps = [tmp_path / "tmp0", tmp_path / "tmp1"]
    workers = []
    for index in (0, 1):
        temps[index].mkdir()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(temps[index]),
               READ_LOG_VARIABLE: str(tmp_path / f"read{index}.txt"),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        command = [sys.executable, "-m", "edgelite", "train", "scratch", "--data", str(data), "--out",
                   str(outs[index]), "--epochs", "1", "--size", "16", "--batch-size", "4", "--json"]
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        finished = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, stderr) in zip(workers, finished):
        assert worker.returncode == 0, stderr
    reports = [json.loads(stdout) for stdout, _ in finished]
    assert all(r["devices"].startswith("MultiWorkerMirroredStrategy from TF_CONFIG") for r in reports)
    assert all(len(r["history"]) == 1 for r in reports)
    assert reports[0]["history"][0]["val_accuracy"] == reports[1]["history"][0]["val_accuracy"]  # one model

    reads = [set((tmp_path / f"read{i}.txt").read_text().splitlines()) for i in (0, 1)]
    dataset = scan_dataset(data)
    every = {str(p) for p, _ in dataset.train + dataset.val}
    assert reads[0] and reads[1] and not reads[0] & reads[1]  # disjoint shards
    assert reads[0] | reads[1] == every  # together, the whole dataset

    chief_files = sorted(p.name for p in outs[0].iterdir())
    assert "history.json" in chief_files and "resume.keras" in chief_files
    assert any(name.startswith("scratch_01_") and name.endswith(".keras") for name in chief_files)
    assert not outs[1].exists()  # the non-chief wrote nothing where it was told to write
    assert list(temps[1].iterdir()) == []  # and removed its temporary run folder
