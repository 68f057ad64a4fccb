"""POST /predict and /models/{name}/predict on a real server process, good input and every kind of bad one."""

from __future__ import annotations

import httpx
import pytest

from edgelite.runtime import load
from tests.conftest import artifact
from tests.serve.conftest import jpeg_bytes, png_bomb

HOW = "send the image as the multipart field 'file'"


def _expected(path, data: bytes, top_k: int) -> list[dict]:
    ranked = load(path).predict(data, top_k=top_k)
    return [{"label": p.label, "score": round(p.score, 6)} for p in ranked]


def test_multipart_and_raw_body_answer_as_the_runtime_does(served, artifacts, int8_name):
    data = jpeg_bytes("red")
    multipart = httpx.post(f"{served.url}/predict", files={"file": ("photo.jpg", data, "image/jpeg")})
    raw = httpx.post(f"{served.url}/predict", content=data, headers={"Content-Type": "image/jpeg"})
    for answer in (multipart, raw):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"model", "predictions", "notes", "timing_ms"}
        assert body["model"] == int8_name
        assert body["predictions"] == _expected(artifact(artifacts, "tflite", "int8"), data, 5)
        assert body["predictions"][0]["label"] == "red"
        assert set(body["timing_ms"]) == {"read", "decode", "queue", "inference", "total"}
        assert answer.headers["x-request-id"]


@pytest.mark.parametrize("color", ["red", "green", "blue"])
def test_each_named_model_and_top_k(served, artifacts, onnx_name, color):
    data = jpeg_bytes(color, seed=7)
    answer = httpx.post(f"{served.url}/models/{onnx_name}/predict", params={"top_k": 2}, content=data,
                        headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == onnx_name
    assert body["predictions"] == _expected(artifact(artifacts, "onnx", "float32"), data, 2)


def test_a_grayscale_upload_is_converted_with_a_note(served):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (40, 40), 120).save(buffer, format="PNG")
    answer = httpx.post(f"{served.url}/predict", files={"file": ("gray.png", buffer.getvalue(), "image/png")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["notes"] == ["the upload: grayscale image converted to RGB"]


def test_models_lists_what_is_served(served, int8_name, onnx_name):
    body = httpx.get(f"{served.url}/models").json()
    assert body["default"] == int8_name
    assert [m["name"] for m in body["models"]] == [int8_name, onnx_name]
    assert body["models"][0]["labels"] == ["blue", "green", "red"]
    assert [m["precision"] for m in body["models"]] == ["int8", "float32"]


def _bad_request(kind: str, photo: bytes) -> tuple[dict, int, str]:
    """(httpx.post keyword arguments, expected status, expected start of the error) of each bad upload."""
    jpeg = {"Content-Type": "image/jpeg"}
    table = {
        "not-an-image": ({"content": b"just text, not a picture", "headers": jpeg}, 400,
                         "the upload: not an image Pillow can read"),
        "truncated-jpeg": ({"content": photo[: len(photo) // 3], "headers": jpeg}, 400,
                           "the upload: truncated or corrupt image"),
        "decompression-bomb": ({"files": {"file": ("bomb.png", png_bomb(), "image/png")}}, 400,
                               "the upload: over the 89,478,485 pixel limit (possible decompression bomb)"),
        "empty-body": ({"content": b"", "headers": jpeg}, 400, "the request holds no image"),
        "over-the-limit": ({"content": b"\xff" * (1024 * 1024 + 1), "headers": jpeg}, 413,
                           "the upload is over the 1 MiB limit (--max-upload-mb)"),
        "text-content-type": ({"content": photo, "headers": {"Content-Type": "text/plain"}}, 415,
                              f"unsupported content type 'text/plain'; {HOW}"),
        "form-urlencoded": ({"content": photo, "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                            415, "unsupported content type 'application/x-www-form-urlencoded'"),
        "json-body": ({"json": {"image": "x"}}, 415, "unsupported content type 'application/json'"),
        "form-without-file": ({"files": {"image": ("photo.jpg", photo, "image/jpeg")}}, 400,
                              f"unknown form field 'image'; {HOW}"),
        "form-file-not-an-image-type": ({"files": {"file": ("notes.txt", b"hello", "text/plain")}}, 415,
                                        "the field 'file' has content type 'text/plain', not an image"),
        "two-files": ({"files": [("file", ("a.jpg", photo, "image/jpeg")), ("file", ("b.jpg", photo, "image/jpeg"))]},
                      400, "expected one field 'file' in the form, got 2"),
        "bad-top-k": ({"content": photo, "headers": jpeg, "params": {"top_k": "0"}}, 400,
                      "top_k must be a whole number of at least 1, got '0'"),
        "unknown-parameter": ({"content": photo, "headers": jpeg, "params": {"topk": "3"}}, 400,
                              "unknown query parameter 'topk'; expected only top_k"),
    }
    return table[kind]


@pytest.mark.parametrize("kind", ["not-an-image", "truncated-jpeg", "decompression-bomb", "empty-body",
                                  "over-the-limit", "text-content-type", "form-urlencoded", "json-body",
                                  "form-without-file", "form-file-not-an-image-type", "two-files", "bad-top-k",
                                  "unknown-parameter"])
def test_bad_uploads_get_a_4xx_json_error_and_the_service_goes_on(served, kind):
    photo = jpeg_bytes("green")
    request, status, message = _bad_request(kind, photo)
    answer = httpx.post(f"{served.url}/predict", **request)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"].startswith(message), answer.json()
    after = httpx.post(f"{served.url}/predict", content=photo, headers={"Content-Type": "image/jpeg"})
    assert after.status_code == 200 and after.json()["predictions"][0]["label"] == "green"


@pytest.mark.parametrize("method, path, status, message", [
    ("POST", "/models/nope/predict", 404, "no model named 'nope'; this server has"),
    ("GET", "/predict", 405, "Method Not Allowed"),
    ("GET", "/no/such/page", 404, "Not Found"),
])
def test_routing_errors_are_json_too(served, method, path, status, message):
    answer = httpx.request(method, f"{served.url}{path}", content=jpeg_bytes(),
                           headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == status
    assert answer.json()["error"].startswith(message)


def test_the_page_is_served_as_a_plain_file(served):
    answer = httpx.get(f"{served.url}/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert '<input id="file" type="file"' in answer.text
    assert "http://" not in answer.text and "https://" not in answer.text  # nothing fetched from elsewhere
