"""The Open Inference Protocol (KServe v2) on a real server, through tritonclient.http and plain JSON."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from edgelite.runtime import load
from tests.conftest import artifact
from tests.serve.conftest import jpeg_bytes


@pytest.fixture(scope="module")
def client(served):
    client = triton.InferenceServerClient(url=served.url.removeprefix("http://"), network_timeout=60)
    yield client
    client.close()


def _runtime_scores(path, images: list[bytes]) -> np.ndarray:
    model = load(path)
    pixels = np.stack([model.prepare(data).pixels for data in images])
    return model.class_scores(model.run(pixels))


def test_health_and_metadata(client, served, int8_name, onnx_name):
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "edgelite"
    assert client.is_model_ready(int8_name) and client.is_model_ready(onnx_name)
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata(int8_name)
    assert meta["name"] == int8_name and meta["platform"] == "edgelite_tflite"
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 32, 32, 3]},
                              {"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["edgelite"]["labels"] == ["blue", "green", "red"]
    assert meta["edgelite"]["precision"] == "int8"
    assert httpx.get(f"{served.url}/v2/health/live").json() == {"live": True}


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_raw_pixels_give_the_runtime_scores(client, artifacts, int8_name, binary, datatype):
    path = artifact(artifacts, "tflite", "int8")
    images = [jpeg_bytes("red"), jpeg_bytes("blue", seed=3)]
    model = load(path)
    pixels = np.stack([model.prepare(data).pixels for data in images])
    tensor = triton.InferInput("pixels", list(pixels.shape), datatype)
    tensor.set_data_from_numpy(pixels.astype(np.float32 if datatype == "FP32" else np.uint8), binary_data=binary)
    result = client.infer(int8_name, [tensor], outputs=[triton.InferRequestedOutput("scores", binary_data=binary)])
    np.testing.assert_allclose(result.as_numpy("scores"), _runtime_scores(path, images), atol=1e-6)


def test_encoded_images_as_bytes_with_classification(client, artifacts, onnx_name):
    images = [jpeg_bytes("green", seed=5), jpeg_bytes("red", seed=6), jpeg_bytes("blue", seed=8)]
    tensor = triton.InferInput("image", [3], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    scores = client.infer(onnx_name, [tensor]).as_numpy("scores")  # no outputs named: binary, every output
    np.testing.assert_allclose(scores, _runtime_scores(artifact(artifacts, "onnx", "float32"), images), atol=1e-6)
    ranked = client.infer(onnx_name, [tensor], outputs=[triton.InferRequestedOutput("scores", class_count=2)])
    top = ranked.as_numpy("scores")
    assert top.shape == (3, 2)
    assert [row[0].decode().split(":")[2] for row in top] == ["green", "red", "blue"]


def test_json_bytes_are_base64_strings(served, int8_name):
    request = {"id": "req-1", "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                          "data": [base64.b64encode(jpeg_bytes("red")).decode()]}]}
    answer = httpx.post(f"{served.url}/v2/models/{int8_name}/infer", json=request)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "req-1" and body["model_name"] == int8_name
    (output,) = body["outputs"]
    assert output["name"] == "scores" and output["datatype"] == "FP32" and output["shape"] == [1, 3]
    assert int(np.argmax(output["data"])) == 2  # red


def _pixels_input(shape, datatype="FP32", value=100.0, name="pixels"):
    return {"name": name, "shape": shape, "datatype": datatype, "data": [value] * int(np.prod(shape))}


@pytest.mark.parametrize("request_body, message", [
    ({"inputs": [_pixels_input([1, 16, 16, 3])]},
     "input 'pixels' must have shape [n, 32, 32, 3] with n from 1 to 4 (--max-batch), got [1, 16, 16, 3]"),
    ({"inputs": [_pixels_input([5, 32, 32, 3])]}, "input 'pixels' must have shape [n, 32, 32, 3] with n from 1 to 4"),
    ({"inputs": [_pixels_input([1, 32, 32, 3], "FP64")]},
     "input 'pixels' takes datatype FP32 or UINT8 (raw 0-255 RGB), got 'FP64'"),
    ({"inputs": [_pixels_input([1, 32, 32, 3], "BYTES")]}, "input 'pixels' takes datatype FP32 or UINT8"),
    ({"inputs": [_pixels_input([1, 32, 32, 3], value=300.0)]}, "input 'pixels' must hold raw RGB values from 0 to 255"),
    ({"inputs": [_pixels_input([1, 32, 32, 3], "UINT8", value=1.5)]}, "input 'pixels': UINT8 data must be whole"),
    ({"inputs": [{"name": "pixels", "shape": [1, 32, 32, 3], "datatype": "FP32", "data": [1.0, 2.0]}]},
     "input 'pixels': 2 values, expected 3072 for shape [1, 32, 32, 3]"),
    ({"inputs": [_pixels_input([1, 32, 32, 3], name="input_1")]}, "unknown input 'input_1'; send one input"),
    ({"inputs": []}, "expected 1 input, got 0"),
    ({"inputs": [_pixels_input([1, 32, 32, 3])], "outputs": [{"name": "logits"}]}, "unknown output 'logits'"),
    ({"inputs": [_pixels_input([1, 32, 32, 3])], "parameters": {"sequence_id": 3}},
     "unknown request parameters field 'sequence_id'"),
    ({"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": ["x"]}]},
     "input 'image' takes datatype BYTES (encoded images), got 'FP32'"),
    ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["not base64!"]}]},
     "input 'image': an element is not valid base64"),
    ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                  "data": [base64.b64encode(b"not an image").decode()]}]},
     "image 0: not an image Pillow can read"),
    ({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                  "data": [base64.b64encode(jpeg_bytes()).decode()]}]},
     "input 'image': 1 images, expected 2 for shape [2]"),
])
def test_wrong_tensors_get_400(served, int8_name, request_body, message):
    answer = httpx.post(f"{served.url}/v2/models/{int8_name}/infer", json=request_body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(message), answer.json()


@pytest.mark.parametrize("content, headers, status, message", [
    (b"{not json", {"Content-Type": "application/json"}, 400, "the body is not valid JSON"),
    (b"[1, 2]", {"Content-Type": "application/json"}, 400, "request must be a JSON object, got list"),
    (b"{}", {"Content-Type": "image/jpeg"}, 415, "unsupported content type 'image/jpeg'"),
    (b"{}", {"Content-Type": "application/json", "Inference-Header-Content-Length": "99"}, 400,
     "Inference-Header-Content-Length '99' is not a length within the 2-byte body"),
    # str.isdigit takes "²" (and int() refuses it): not a number, so a 400 like any other
    (b"{}", {"Content-Type": "application/json", "Inference-Header-Content-Length": "\u00b2".encode("latin-1")},
     400, "Inference-Header-Content-Length '\u00b2' is not a length within the 2-byte body"),
    (b"{}", {"Content-Type": "application/json", "Inference-Header-Content-Length": "1e1"}, 400,
     "Inference-Header-Content-Length '1e1' is not a length"),
    (b"[" * 5000 + b"]" * 5000, {"Content-Type": "application/json"}, 400, "the body is JSON nested too deeply"),
    (b'{"inputs": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001, {"Content-Type": "application/json"}, 400,
     "the body is JSON nested too deeply"),
])
def test_malformed_bodies(served, int8_name, content, headers, status, message):
    answer = httpx.post(f"{served.url}/v2/models/{int8_name}/infer", content=content, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"].startswith(message)


def test_tritonclient_sees_errors_and_unknown_models(client, int8_name):
    tensor = triton.InferInput("pixels", [1, 8, 8, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(InferenceServerException, match=r"must have shape \[n, 32, 32, 3\]") as bad:
        client.infer(int8_name, [tensor])
    assert bad.value.status() == "400"
    with pytest.raises(InferenceServerException, match="no model named 'nope'") as missing:
        client.get_model_metadata("nope")
    assert missing.value.status() == "404"


def test_binary_answers_carry_their_header_length(served, int8_name):
    data = jpeg_bytes("red")
    header = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": 4 + len(data)}}],
                         "outputs": [{"name": "scores", "parameters": {"binary_data": True}}]}).encode()
    body = header + len(data).to_bytes(4, "little") + data
    answer = httpx.post(f"{served.url}/v2/models/{int8_name}/infer", content=body,
                        headers={"Inference-Header-Content-Length": str(len(header)),
                                 "Content-Type": "application/octet-stream"})
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    meta = json.loads(answer.content[:length])
    assert meta["outputs"][0]["parameters"] == {"binary_data_size": 12}
    scores = np.frombuffer(answer.content[length:], dtype="<f4")
    assert scores.shape == (3,) and int(np.argmax(scores)) == 2
