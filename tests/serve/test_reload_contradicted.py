"""`serve --reload-on-change` refuses a file whose metadata its graph contradicts, as `load` does."""

from __future__ import annotations

import json
import os
import shutil

import httpx

from edgelite.runtime.metadata import METADATA_KEY
from edgelite.runtime.tflite_format import read_tflite
from tests.conftest import artifact
from tests.runtime.test_untrusted import _edited, _tflite_with_metadata
from tests.serve.conftest import Server, jpeg_bytes


def test_reload_keeps_the_old_model_for_rescale_on_a_graph_that_scales(artifacts, tmp_path):
    source = artifact(artifacts, "tflite", "int8")
    served_file = tmp_path / "colors.tflite"
    shutil.copyfile(source, served_file)
    document = json.loads(read_tflite(source.read_bytes()).metadata[METADATA_KEY])
    twice = _tflite_with_metadata(source, _edited(document, input_scaling="rescale"), tmp_path / "incoming.tmp")
    server = Server([served_file], tmp_path, "--reload-on-change")
    try:
        os.replace(twice, served_file)
        server.wait_metric("edgelite_model_reloads_total", 1, model="colors", result="kept_old")
        assert "input_scaling is rescale, but the graph already scales its input" in server.log()
        answer = httpx.post(f"{server.url}/predict", content=jpeg_bytes("red"), headers={"Content-Type": "image/jpeg"})
        assert answer.json()["predictions"][0]["label"] == "red"  # the intact model still serves
    finally:
        assert server.stop() == 0, server.log()
