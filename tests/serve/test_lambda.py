"""`edgelite.serve.lambda_handler`, called with API Gateway proxy events as AWS would call it."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from types import SimpleNamespace

import httpx
import pytest

from edgelite.runtime import load
from edgelite.serve import lambda_handler
from tests.conftest import artifact
from tests.serve.conftest import jpeg_bytes, png_bomb

CONTEXT = SimpleNamespace(aws_request_id="0f1e2d3c-test")


@pytest.fixture()
def model_path(artifacts, monkeypatch):
    path = artifact(artifacts, "tflite", "int8")
    monkeypatch.setenv("EDGELITE_MODEL", str(path))
    return path


def rest_event(body: bytes, content_type: str = "image/jpeg", query=None, method: str = "POST",
               encoded: bool = True) -> dict:
    """An API Gateway REST API proxy event (payload format 1.0)."""
    return {"resource": "/predict", "path": "/predict", "httpMethod": method,
            "headers": {"Content-Type": content_type}, "queryStringParameters": query,
            "requestContext": {"requestId": "r-1", "stage": "prod"},
            "body": base64.b64encode(body).decode() if encoded else body.decode("latin-1"),
            "isBase64Encoded": encoded}


def http_api_event(body: bytes, content_type: str) -> dict:
    """An API Gateway HTTP API event (payload format 2.0)."""
    return {"version": "2.0", "routeKey": "POST /predict", "rawPath": "/predict", "rawQueryString": "top_k=1",
            "headers": {"content-type": content_type}, "queryStringParameters": {"top_k": "1"},
            "requestContext": {"http": {"method": "POST", "path": "/predict"}},
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def _body(response: dict) -> dict:
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


def test_a_rest_event_gets_the_predict_answer(model_path):
    data = jpeg_bytes("red")
    response = lambda_handler(rest_event(data, query={"top_k": "2"}), CONTEXT)
    assert response["statusCode"] == 200, response
    body = _body(response)
    expected = load(model_path).predict(data, top_k=2)
    assert body["model"] == model_path.stem
    assert body["predictions"] == [{"label": p.label, "score": round(p.score, 6)} for p in expected]
    assert body["predictions"][0]["label"] == "red"
    assert set(body["timing_ms"]) == {"decode", "inference", "total"}


def test_an_http_api_event_with_a_multipart_upload(model_path):
    upload = {"file": ("photo.jpg", jpeg_bytes("blue"), "image/jpeg")}
    request = httpx.Request("POST", "http://lambda/predict", files=upload)
    response = lambda_handler(http_api_event(request.read(), request.headers["content-type"]), CONTEXT)
    assert response["statusCode"] == 200, response
    assert [p["label"] for p in _body(response)["predictions"]] == ["blue"]


def test_get_describes_the_model(model_path):
    response = lambda_handler(rest_event(b"", method="GET"), CONTEXT)
    assert response["statusCode"] == 200
    assert _body(response) == {"model": model_path.stem, "labels": ["blue", "green", "red"],
                               "input_height": 32, "input_width": 32}


@pytest.mark.parametrize("event, status, message", [
    (rest_event(b"not an image"), 400, "the upload: not an image Pillow can read"),
    (rest_event(jpeg_bytes()[:200]), 400, "the upload: truncated or corrupt image"),
    (rest_event(png_bomb(), "image/png"), 400, "the upload: over the 89,478,485 pixel limit"),
    (rest_event(jpeg_bytes(), "text/plain"), 415, "unsupported content type 'text/plain'"),
    (rest_event(b""), 400, "the request holds no image"),
    (rest_event(jpeg_bytes(), query={"top_k": "x"}), 400, "top_k must be a whole number of at least 1"),
    (rest_event(jpeg_bytes(), query={"k": "1"}), 400, "unknown query parameter 'k'"),
    (rest_event(jpeg_bytes(), method="DELETE"), 405, "method DELETE not allowed"),
    (dict(rest_event(jpeg_bytes()), body="%%% not base64"), 400, "isBase64Encoded is true but the body is not"),
    ("not an event", 400, "expected an API Gateway proxy event"),
])
def test_bad_events_get_a_4xx_json_error(model_path, event, status, message):
    response = lambda_handler(event, CONTEXT)
    assert response["statusCode"] == status, response
    assert _body(response)["error"].startswith(message)


def test_text_bodies_say_how_to_configure_binary_media_types(model_path):
    response = lambda_handler(rest_event(b"GIF89a garbage", encoded=False), CONTEXT)
    assert response["statusCode"] == 400
    assert "add image/* and multipart/form-data to the API's binary media types" in _body(response)["error"]


def test_a_missing_model_is_a_500_that_says_what_to_set(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("EDGELITE_MODEL", raising=False)
    response = lambda_handler(rest_event(jpeg_bytes()), CONTEXT)
    assert response["statusCode"] == 500
    assert _body(response)["error"] == "EDGELITE_MODEL is not set; set it to the path of a .tflite or .onnx file"
    monkeypatch.setenv("EDGELITE_MODEL", str(tmp_path / "gone.tflite"))
    with caplog.at_level(logging.ERROR, logger="edgelite.serve"):
        response = lambda_handler(rest_event(jpeg_bytes()), CONTEXT)
    assert response["statusCode"] == 500
    assert _body(response)["error"] == f"{tmp_path / 'gone.tflite'}: no such file (request id 0f1e2d3c-test)"
    assert "0f1e2d3c-test" in caplog.text


def test_the_handler_needs_no_http_stack():
    code = ("import sys, edgelite.serve; edgelite.serve.lambda_handler; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'prometheus_client') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _good() -> dict:
    return rest_event(jpeg_bytes())


@pytest.mark.parametrize("change, message", [
    ({"headers": ["Content-Type", "image/jpeg"]}, "the event's 'headers' is a list, not a dict"),
    ({"queryStringParameters": "top_k=1"}, "the event's 'queryStringParameters' is a str, not a dict"),
    ({"body": 10 ** 10}, "the event's 'body' is a int, not a str or bytes"),
    ({"body": ["a"]}, "the event's 'body' is a list, not a str or bytes"),
    ({"isBase64Encoded": "yes"}, "the event's 'isBase64Encoded' is a str, not a bool"),
    ({"httpMethod": 7}, "the event's 'httpMethod' is a int, not a str"),
    ({"httpMethod": None, "requestContext": "ctx"}, "the event's 'requestContext' is a str, not a dict"),
    ({"httpMethod": None, "requestContext": {"http": []}}, "the event's 'http' is a list, not a dict"),
    ({"httpMethod": None, "requestContext": {"http": {"method": 1}}}, "the event's 'method' is a int, not a str"),
])
def test_malformed_event_shapes_are_400_not_500(model_path, change, message):
    response = lambda_handler(dict(_good(), **change), CONTEXT)
    assert response["statusCode"] == 400, response
    assert _body(response)["error"] == f"expected an API Gateway proxy event: {message}"


@pytest.mark.parametrize("event", [
    {"httpMethod": "POST", "isBase64Encoded": True},  # no body at all
    {"httpMethod": "POST", "body": None, "headers": None},
    {"httpMethod": "POST", "body": "\udcff\udcfe", "isBase64Encoded": False},  # not encodable text
    {"httpMethod": "POST", "body": "%%%", "isBase64Encoded": True},
    {},
    [],
    None,
])
def test_more_broken_events_are_4xx(model_path, event):
    response = lambda_handler(event, CONTEXT)
    assert 400 <= response["statusCode"] < 500, response


def test_a_huge_body_is_refused_before_it_is_decoded(model_path):
    declared = dict(_good(), headers={"Content-Type": "image/jpeg", "Content-Length": str(10 ** 10)})
    response = lambda_handler(declared, CONTEXT)
    assert response["statusCode"] == 413
    assert _body(response)["error"].startswith("the upload is over the 20 MiB limit")
    # 40 MB of base64 text: refused by its length, before base64 turns it into bytes
    actual = dict(_good(), body="A" * (40 * 1024 * 1024))
    response = lambda_handler(actual, CONTEXT)
    assert response["statusCode"] == 413
