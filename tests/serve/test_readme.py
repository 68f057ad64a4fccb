"""The README's serve example run as written, two artifacts of one checkpoint side by side (issue 17.1),
and how served models are named and start."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from edgelite.errors import OptionError
from edgelite.runtime import load
from edgelite.serve.naming import model_names
from tests.conftest import artifact
from tests.serve.conftest import HOST, READY_TIMEOUT_S, free_port, jpeg_bytes

README = Path(__file__).resolve().parents[2] / "README.md"
README_PORT = "8000"


def serve_section() -> str:
    text = README.read_text()
    start = text.index("\n## serve\n")
    return text[start:text.index("\n## ", start + 1)]


def commands(section: str, program: str) -> list[str]:
    """The indented example lines that run `program`, with their backslash continuations joined."""
    lines, joined = section.splitlines(), []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(f"    {program} "):
            command = line.strip()
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            joined.append(command)
        i += 1
    return joined


def without_comment(command: str) -> str:
    return re.sub(r"\s+#[^'\"]*$", "", command)


def test_the_readme_serve_example_has_two_artifacts_of_one_checkpoint():
    serve = [c for c in commands(serve_section(), "edgelite serve") if "ARTIFACT..." not in c]
    assert serve == ["edgelite serve artifacts/model_int8.tflite artifacts/model_int8.onnx --threads 2"]


@pytest.fixture(scope="module")
def readme_server(artifacts, tmp_path_factory):
    """The README's `edgelite serve` line, run in a folder holding the files it names (on a free port)."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "artifacts").mkdir()
    shutil.copy(artifact(artifacts, "tflite", "int8"), folder / "artifacts" / "model_int8.tflite")
    shutil.copy(artifact(artifacts, "onnx", "int8"), folder / "artifacts" / "model_int8.onnx")
    (folder / "photo.jpg").write_bytes(jpeg_bytes("blue"))
    line = next(c for c in commands(serve_section(), "edgelite serve") if "ARTIFACT..." not in c)
    port = str(free_port())
    argv = [sys.executable, "-m", "edgelite", *shlex.split(line)[1:], "--port", port]
    log_path = folder / "serve.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield folder, port, log_path
    finally:
        process.terminate()
        process.wait(60)


def run_shell(command: str, folder: Path, port: str) -> str:
    """One README shell line as written, with the server's port for 8000, in the folder with photo.jpg."""
    command = without_comment(command).replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{port}")
    done = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's lines use curl")
def test_the_readme_curl_lines_work_as_written(readme_server):
    folder, port, _ = readme_server
    lines = commands(serve_section(), "curl")
    assert len(lines) >= 6
    answers = [json.loads(run_shell(line, folder, port)) for line in lines]
    for line, answer in zip(lines, answers):
        assert "error" not in answer, (line, answer)
    predicted = [a for a in answers if "predictions" in a]
    assert [a["model"] for a in predicted] == ["model_int8", "model_int8", "model_int8_onnx"]
    assert len(predicted[1]["predictions"]) == 3 and predicted[2]["predictions"][0]["label"] == "blue"
    assert any(a.get("name") == "model_int8" and a.get("versions") == ["1"] for a in answers)
    assert {"name": "model_int8_onnx", "ready": True} in answers
    assert any(a.get("model_name") == "model_int8" and a["outputs"][0]["shape"] == [1, 3] for a in answers)


def test_the_readme_python_client_works_as_written(readme_server):
    folder, port, _ = readme_server
    section = serve_section()
    code = section[section.index("```python\n") + len("```python\n"):section.index("\n```", section.index("```python"))]
    code = code.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{port}")
    lines = code.splitlines()
    lines[-1] = f"print({lines[-1].split('#')[0].strip()}.shape)"  # show what the last line gives
    done = subprocess.run([sys.executable, "-c", "\n".join(lines)], cwd=folder, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 3)"


def test_serve_says_its_models_backends_and_page_at_start(readme_server):
    _, port, log_path = readme_server
    log = log_path.read_text()
    assert re.search(rf"^model model_int8: artifacts/model_int8.tflite \(tflite int8, litert [^)]+\) at "
                     rf"http://127.0.0.1:{port}/models/model_int8/predict, also /predict$", log, re.M), log
    assert re.search(rf"^model model_int8_onnx: artifacts/model_int8.onnx \(onnx int8, onnxruntime [^)]+\) at "
                     rf"http://127.0.0.1:{port}/models/model_int8_onnx/predict$", log, re.M), log
    assert f"page: http://127.0.0.1:{port}/" in log


def test_top_k_past_the_classes_gives_every_class_once(served, int8_name):
    answer = httpx.post(f"{served.url}/predict?top_k=9", content=jpeg_bytes("red"),
                        headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert answer.status_code == 200
    assert sorted(p["label"] for p in answer.json()["predictions"]) == ["blue", "green", "red"]


def test_names_of_two_artifacts_of_one_checkpoint(artifacts, tmp_path):
    tflite, onnx = load(artifact(artifacts, "tflite", "int8")), load(artifact(artifacts, "onnx", "int8"))
    assert tflite.path.stem == onnx.path.stem
    assert list(model_names([tflite, onnx])) == [tflite.path.stem, f"{onnx.path.stem}_onnx"]
    assert list(model_names([onnx, tflite])) == [onnx.path.stem, f"{tflite.path.stem}_tflite"]
    (tmp_path / "other").mkdir()
    copy = tmp_path / "other" / tflite.path.name
    copy.write_bytes(tflite.path.read_bytes())
    with pytest.raises(OptionError, match=f"two models are named '{tflite.path.stem}'"):
        model_names([tflite, load(copy)])  # one name in two folders: neither would say which
