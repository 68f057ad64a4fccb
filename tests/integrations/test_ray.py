"""`predict --ray` and `edgelite.integrations.ray` on a real two-node Ray cluster on 127.0.0.1.

The cluster (and every job that talks to it) runs in its own network namespace
with only loopback, and its own PID namespace: Ray would otherwise bind to the
machine's interface, and `ray stop` would see other users' Ray processes.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from tests.conftest import artifact
from tests.integrations.ray_cluster import namespace_command

pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'edgelite[ray]'")
pq = pytest.importorskip("pyarrow.parquet")

HELPER = Path(__file__).with_name("ray_cluster.py")
KILL_JOB = Path(__file__).with_name("ray_kill_job.py")
BYTES_JOB = Path(__file__).with_name("ray_bytes_job.py")
EDGELITE = [sys.executable, "-P", "-m", "edgelite"]


def _namespaces_allowed() -> bool:
    try:
        return subprocess.run(namespace_command(["true"]), capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_namespaces = pytest.mark.skipif(
    not _namespaces_allowed(),
    reason="the Ray cluster tests need 'unshare --net --pid' (root, as in CI) to keep Ray on loopback")


def run_cluster(tmp: Path, jobs: list[dict], nodes: int = 2, hide: tuple[str, ...] = ()) -> list[dict]:
    """Start the cluster, run `jobs` (each {"name", "args"}), stop it; return each job's code and output."""
    for job in jobs:
        job.update(stdout=str(tmp / f"{job['name']}.out"), stderr=str(tmp / f"{job['name']}.err"))
    spec = {"nodes": nodes, "hide": list(hide), "jobs": jobs, "result": str(tmp / "result.json")}
    (tmp / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(namespace_command([sys.executable, "-P", str(HELPER), str(tmp / "spec.json")]),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp / "result.json").read_text())
    assert len(results) == len(jobs), done.stderr[-3000:]
    return [r | {"stdout": Path(j["stdout"]).read_text(), "stderr": Path(j["stderr"]).read_text()}
            for r, j in zip(results, jobs)]


def local(*args: str):
    return CliRunner().invoke(cli, ["predict", *args])


@pytest.fixture(scope="module")
def images(color_data, tmp_path_factory) -> Path:
    """Twelve photos of three classes and one broken file."""
    folder = tmp_path_factory.mktemp("ray-images")
    for name in ("red", "green", "blue"):
        for image in sorted((color_data / "validation" / name).iterdir())[:4]:
            shutil.copy(image, folder / f"{name}_{image.name}")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    return folder


@pytest.fixture(scope="module")
def model(artifacts) -> Path:
    return artifact(artifacts, "tflite", "int8")


@pytest.fixture(scope="module")
def cluster_jobs(images, model, tmp_path_factory) -> dict:
    """One two-node cluster: `predict --ray` in each output format, file:// URIs, a killed actor, a missing model."""
    tmp = tmp_path_factory.mktemp("ray-jobs")
    hidden = tmp / "models"  # the job driver sees this folder, the cluster's nodes see an empty one
    hidden.mkdir()
    shutil.copy(model, hidden / model.name)
    paths = sorted(str(p) for p in images.iterdir() if p.name != "broken.jpg") * 4
    (tmp / "paths.txt").write_text("\n".join(paths))
    uris = [Path(paths[0]).as_uri(), (images / "missing.jpg").as_uri(), (images / "broken.jpg").as_uri()]
    ray = ["--ray", "{address}"]
    (tmp / "lines.txt").write_bytes(paths[0].encode() + b"\n\xff\xfe not UTF-8\n" + paths[1].encode() + b"\n")
    jobs = [
        {"name": "stdin_lines", "args": ["bash", "-c", f"exec \"$@\" < '{tmp / 'lines.txt'}'", "stdin"] + EDGELITE
         + ["predict", str(model), "-", "--jsonl"] + ray},
        {"name": "stdin_image", "args": ["bash", "-c", f"exec \"$@\" < '{paths[0]}'", "stdin"] + EDGELITE
         + ["predict", str(model), "-", "--jsonl"] + ray},
        {"name": "jsonl", "args": EDGELITE + ["predict", str(model), str(images), "--jsonl"] + ray},
        {"name": "csv", "args": EDGELITE + ["predict", str(model), str(images), "--out", str(tmp / "r.csv")] + ray},
        {"name": "json", "args": EDGELITE + ["predict", str(model), str(images), "--json"] + ray},
        {"name": "parquet", "args": EDGELITE + ["predict", str(model), str(images), "--out",
                                                str(tmp / "r.parquet")] + ray},
        {"name": "uris", "args": EDGELITE + ["predict", str(model), *uris, "--jsonl"] + ray},
        {"name": "kill", "args": [sys.executable, "-P", str(KILL_JOB), "{address}", str(model),
                                  str(tmp / "paths.txt"), str(tmp / "kill.json")]},
        {"name": "env", "args": ["env", "RAY_ADDRESS={address}"] + EDGELITE + ["predict", str(model), paths[0],
                                                                                 "--jsonl", "--ray"]},
        {"name": "bytes", "args": [sys.executable, "-P", str(BYTES_JOB), "{address}", str(model), paths[0],
                                   str(images / "broken.jpg"), str(tmp / "bytes.json")]},
        {"name": "relative", "args": ["bash", "-c", f"cd '{images.parent}' && exec \"$@\"", "relative"] + EDGELITE
         + ["predict", str(model), f"{images.name}/{Path(paths[0]).name}", f"{images.name}/broken.jpg", "--jsonl"]
         + ray},
        {"name": "missing", "args": EDGELITE + ["predict", str(hidden / model.name), str(images), "--jsonl"] + ray},
    ]
    results = run_cluster(tmp, jobs, hide=(str(hidden),))
    return {job["name"]: result for job, result in zip(jobs, results)} | {"tmp": tmp}


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def _same(ray_records: list[dict], local_records: list[dict]) -> None:
    assert [r["image"] for r in ray_records] == [r["image"] for r in local_records]
    for mine, theirs in zip(ray_records, local_records):
        assert mine.get("error") == theirs.get("error")
        assert [p["label"] for p in mine.get("predictions", [])] == [p["label"] for p in theirs.get("predictions", [])]
        for a, b in zip(mine.get("predictions", []), theirs.get("predictions", [])):
            assert abs(a["score"] - b["score"]) <= 1e-6


@needs_namespaces
def test_jsonl_on_two_nodes_equals_local_predict_with_one_error_row(cluster_jobs, images, model):
    expected = local(str(model), str(images), "--jsonl")
    assert expected.exit_code == 1
    job = cluster_jobs["jsonl"]
    assert job["returncode"] == 1, job["stderr"]
    records = _records(job["stdout"])
    _same(records, _records(expected.stdout))
    assert len(records) == 13
    assert [r["image"] for r in records if "error" in r] == [str(images / "broken.jpg")]
    assert job["stderr"].splitlines() == [f"error: {images / 'broken.jpg'}: not an image Pillow can read",
                                          "error: 1 of 13 images could not be read"]


@needs_namespaces
def test_csv_json_and_parquet_outputs_match_the_local_command(cluster_jobs, images, model, tmp_path):
    assert local(str(model), str(images), "--out", str(tmp_path / "local.csv")).exit_code == 1
    local_rows = list(csv.reader(io.StringIO((tmp_path / "local.csv").read_text())))
    ray_rows = list(csv.reader(io.StringIO((cluster_jobs["tmp"] / "r.csv").read_text())))
    assert ray_rows[0] == local_rows[0] and len(ray_rows) == len(local_rows) == 14
    for mine, theirs in zip(ray_rows[1:], local_rows[1:]):
        assert mine[0::2] == theirs[0::2]  # image, labels, error
        assert all(abs(float(a) - float(b)) <= 1e-6 for a, b in zip(mine[2:-1:2], theirs[2:-1:2]) if a)

    expected = json.loads(local(str(model), str(images), "--json").stdout)
    document = json.loads(cluster_jobs["json"]["stdout"])
    assert document["model"] == expected["model"] and document["errors"] == expected["errors"]
    _same(document["results"], expected["results"])

    table = pq.read_table(cluster_jobs["tmp"] / "r.parquet")
    assert table.column_names == ["image", "predictions", "error", "notes"]
    rows = [{k: v for k, v in row.items() if v is not None and k != "notes"} for row in table.to_pylist()]
    for row in rows:
        if "error" in row:
            del row["predictions"]
    _same(rows, _records(local(str(model), str(images), "--jsonl").stdout))


@needs_namespaces
def test_file_uris_are_read_through_pyarrow_with_one_error_row_each(cluster_jobs, images, model):
    job = cluster_jobs["uris"]
    assert job["returncode"] == 1, job["stderr"]
    records = _records(job["stdout"])
    first = next(p for p in sorted(images.iterdir()) if p.name != "broken.jpg")
    assert [r["image"] for r in records] == [first.as_uri(), (images / "missing.jpg").as_uri(),
                                            (images / "broken.jpg").as_uri()]
    expected = _records(local(str(model), str(first), "--jsonl").stdout)[0]
    _same(records[:1], [expected | {"image": first.as_uri()}])
    assert records[1]["error"] == f"{(images / 'missing.jpg').as_uri()}: no such file"
    assert records[2]["error"] == f"{(images / 'broken.jpg').as_uri()}: not an image Pillow can read"


@needs_namespaces
def test_an_actor_killed_mid_batch_is_restarted_and_every_image_comes_once(cluster_jobs, images, model):
    job = cluster_jobs["kill"]
    assert job["returncode"] == 0, job["stderr"][-2000:]
    report = json.loads((cluster_jobs["tmp"] / "kill.json").read_text())
    paths = (cluster_jobs["tmp"] / "paths.txt").read_text().splitlines()
    assert report["killed"] is not None and report["title"].endswith(".submit")
    assert report["killed_is_gone"]
    assert report["rows_before_kill"] < len(paths)
    assert [r["image"] for r in report["rows"]] == paths  # each exactly once, in input order
    expected = {r["image"]: r for r in _records(local(str(model), *sorted(set(paths)), "--jsonl").stdout)}
    _same(report["rows"], [expected[p] for p in paths])


@needs_namespaces
def test_plain_ray_flag_joins_the_cluster_named_by_ray_address(cluster_jobs, images, model):
    job = cluster_jobs["env"]
    assert job["returncode"] == 0, job["stderr"]
    assert job["stderr"] == ""  # Ray's own logs, warnings and reports stay out of the CLI's output
    first = (cluster_jobs["tmp"] / "paths.txt").read_text().splitlines()[0]
    _same(_records(job["stdout"]), _records(local(str(model), first, "--jsonl").stdout))


@needs_namespaces
def test_a_dataset_of_image_bytes_gives_the_same_rows(cluster_jobs, images, model):
    assert cluster_jobs["bytes"]["returncode"] == 0, cluster_jobs["bytes"]["stderr"][-2000:]
    rows = {row["image"]: row for row in json.loads((cluster_jobs["tmp"] / "bytes.json").read_text())}
    first = (cluster_jobs["tmp"] / "paths.txt").read_text().splitlines()[0]
    assert set(rows) == {first, str(images / "broken.jpg")}
    assert rows[str(images / "broken.jpg")]["error"] == f"{images / 'broken.jpg'}: not an image Pillow can read"
    assert rows[str(images / "broken.jpg")]["predictions"] == []
    good = rows[first] | {"predictions": [{"label": p["label"], "score": p["score"]} for p in rows[first]["predictions"]]}
    _same([{k: v for k, v in good.items() if k in ("image", "predictions")}],
          _records(local(str(model), first, "--jsonl").stdout))


@needs_namespaces
@pytest.mark.parametrize("job_name", ["stdin_lines", "stdin_image"])
def test_stdin_paths_lines_in_error_and_a_piped_image_match_local_predict(cluster_jobs, model, job_name):
    tmp = cluster_jobs["tmp"]
    piped = (tmp / "lines.txt" if job_name == "stdin_lines"
             else Path((tmp / "paths.txt").read_text().splitlines()[0])).read_bytes()
    expected = CliRunner().invoke(cli, ["predict", str(model), "-", "--jsonl"], input=piped)
    job = cluster_jobs[job_name]
    assert job["returncode"] == expected.exit_code, job["stderr"]
    _same(_records(job["stdout"]), _records(expected.stdout))
    names = [r["image"] for r in _records(job["stdout"])]
    assert len(names) == (3 if job_name == "stdin_lines" else 1)
    if job_name == "stdin_lines":
        assert _records(job["stdout"])[1]["error"] == "stdin line 2: not UTF-8 text; expected one image path per line"


@needs_namespaces
def test_relative_paths_are_read_from_the_drivers_folder_and_shown_as_given(cluster_jobs, images, model,
                                                                            monkeypatch):
    monkeypatch.chdir(images.parent)
    first = Path((cluster_jobs["tmp"] / "paths.txt").read_text().splitlines()[0]).name
    expected = local(str(model), f"{images.name}/{first}", f"{images.name}/broken.jpg", "--jsonl")
    job = cluster_jobs["relative"]
    assert job["returncode"] == expected.exit_code == 1, job["stderr"]
    _same(_records(job["stdout"]), _records(expected.stdout))
    assert _records(job["stdout"])[1] == {"image": f"{images.name}/broken.jpg",
                                          "error": f"{images.name}/broken.jpg: not an image Pillow can read"}


@needs_namespaces
def test_a_cluster_whose_nodes_lack_the_model_file_is_one_error_line(cluster_jobs, model):
    job = cluster_jobs["missing"]
    assert job["returncode"] == 1
    assert job["stdout"] == ""
    assert job["stderr"].splitlines() == [
        f"error: on the Ray cluster (node 127.0.0.1): {cluster_jobs['tmp'] / 'models' / model.name}: no such file "
        "(every node must have the model at this path)"]


def test_an_address_nothing_listens_on_is_one_error_line(model, images):
    result = local(str(model), str(images), "--jsonl", "--ray", "127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: --ray 127.0.0.1:1: no Ray cluster answers there (Connection refused); "
        "start one with 'ray start --head' or fix the address"]


def test_an_address_without_a_port_is_one_error_line(model, images):
    result = local(str(model), str(images), "--ray", "head-node")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: --ray head-node: expected HOST:PORT (the head's GCS port, 6379 by default), ray://HOST:PORT or auto"]


def test_without_ray_installed_the_error_says_which_extra(model, images, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.delitem(sys.modules, "edgelite.integrations.ray", raising=False)
    result = local(str(model), str(images), "--jsonl", "--ray", "127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: this step needs Ray, which is not installed; install it with: pip install 'edgelite[ray]'"]


def test_parquet_output_needs_ray(model, images, tmp_path):
    result = local(str(model), str(images), "--out", str(tmp_path / "r.parquet"))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'r.parquet'}: Parquet output is written by --ray runs; use .jsonl, .csv or .json here"]
    assert not (tmp_path / "r.parquet").exists()
