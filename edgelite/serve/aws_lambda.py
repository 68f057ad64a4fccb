"""`lambda_handler`: the /predict answer for an AWS API Gateway proxy event, without an HTTP server.

Set the function's handler to `edgelite.serve.lambda_handler` and the
environment variable EDGELITE_MODEL to the artifact's path (e.g. a file in
the deployment package or a layer). The model is loaded once per container,
on the first event. API Gateway (REST "proxy" events and HTTP API 2.0 events)
must pass images as binary: add `image/*` and `multipart/form-data` to the
API's binary media types, so that the body arrives base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from edgelite.errors import EdgeliteError, ImageError, OptionError, RequestError
from edgelite.runtime import Model, load
from edgelite.serve.options import ServeOptions
from edgelite.serve.predict_format import check_upload_type, image_bytes, predict_answer, top_k

MODEL_ENV = "EDGELITE_MODEL"
log = logging.getLogger("edgelite.serve")
_loaded: dict[str, Model] = {}  # one model per container, kept between events
_OPTIONS = ServeOptions()


def _model() -> Model:
    path = os.environ.get(MODEL_ENV, "")
    if not path:
        raise OptionError(f"{MODEL_ENV} is not set; set it to the path of a .tflite or .onnx file")
    if path not in _loaded:
        _loaded.clear()
        _loaded[path] = load(path)
    return _loaded[path]


def _request(event: Any) -> tuple[str, dict[str, str], dict[str, str], bytes, bool]:
    """(method, headers, query, body, whether the body came base64-encoded) of a REST or HTTP API event."""
    if not isinstance(event, dict):
        raise RequestError(400, "bad_event",
                           f"expected an API Gateway proxy event (a dict), got {type(event).__name__}")
    method = event.get("httpMethod") or event.get("requestContext", {}).get("http", {}).get("method", "")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    body = event.get("body") or ""
    encoded = bool(event.get("isBase64Encoded"))
    if encoded:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "bad_event", "isBase64Encoded is true but the body is not valid base64") from None
    else:
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return method.upper(), headers, query, data, encoded


def _response(status: int, document: dict, headers: Optional[dict] = None) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": json.dumps(document), "isBase64Encoded": False}


def lambda_handler(event: Any, context: Any = None) -> dict:
    """Classify the image in an API Gateway proxy event; answer as `POST /predict` does.

    POST with the image as the (base64-encoded) body or as the multipart field
    `file`, optional `?top_k=`; GET describes the model. Bad input gets a 4xx
    `{"error": ...}`; anything unexpected a 500 naming the request id, under
    which the trace is logged.
    """
    request_id = getattr(context, "aws_request_id", None) or uuid.uuid4().hex[:16]
    started = time.perf_counter()
    try:
        method, headers, query, body, encoded = _request(event)
        model = _model()
        name = Path(model.path).stem
        if method == "GET":
            return _response(200, {"model": name, "labels": list(model.labels),
                                   "input_height": model.height, "input_width": model.width})
        if method != "POST":
            raise RequestError(405, "method_not_allowed", f"method {method or '(none)'} not allowed; "
                                                          "POST an image, or GET the model's description")
        k = top_k(query, _OPTIONS.top_k)
        check_upload_type(headers.get("content-type"))
        data = image_bytes(headers.get("content-type"), body, _OPTIONS.max_upload_bytes)
        try:
            prepared = model.prepare(data)
        except ImageError as exc:
            hint = "" if encoded else ("; API Gateway passed the body as text: add image/* and multipart/form-data "
                                       "to the API's binary media types")
            raise RequestError(400, "bad_image", str(exc).replace("image bytes: ", "the upload: ", 1) + hint) from None
        decoded = time.perf_counter()
        ranked = model.rank(model.class_scores(model.run(prepared.pixels[None])), k)[0]
        done = time.perf_counter()
        timing = {"decode": (decoded - started) * 1000.0, "inference": (done - decoded) * 1000.0,
                  "total": (done - started) * 1000.0}
        return _response(200, predict_answer(name, ranked, prepared.notes, timing))
    except RequestError as exc:
        return _response(exc.status, {"error": str(exc)}, exc.headers)
    except OptionError as exc:
        status = 500 if MODEL_ENV in str(exc) else 400
        return _response(status, {"error": str(exc)})
    except EdgeliteError as exc:  # the model cannot be loaded: the deployment's problem, said plainly
        log.error("request %s: %s", request_id, exc)
        return _response(500, {"error": f"{exc} (request id {request_id})", "request_id": request_id})
    except Exception:
        log.exception("request %s failed", request_id)
        return _response(500, {"error": f"internal error; the log has the details under request id {request_id}",
                                "request_id": request_id})
