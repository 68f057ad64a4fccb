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
from edgelite.runtime.describe import describe_model
from edgelite.serve.options import ServeOptions
from edgelite.serve.predict_format import check_upload_type, image_bytes, predict_answer, too_large, top_k

MODEL_ENV = "EDGELITE_MODEL"
log = logging.getLogger("edgelite.serve")
_loaded: dict[str, Model] = {}  # one model per container, kept between events
_OPTIONS = ServeOptions()


class _Unconfigured(OptionError):
    """The function's environment names no model: the deployment's problem, not the request's."""


def _model() -> Model:
    path = os.environ.get(MODEL_ENV, "")
    if not path:
        raise _Unconfigured(f"{MODEL_ENV} is not set; set it to the path of a .tflite or .onnx file")
    if path not in _loaded:
        _loaded.clear()
        _loaded[path] = load(path)
    return _loaded[path]


def _bad_event(message: str) -> RequestError:
    return RequestError(400, "bad_event", f"expected an API Gateway proxy event: {message}")


def _field(event: dict, key: str, kinds: tuple[type, ...], default: Any) -> Any:
    """`event[key]` when it has one of `kinds`; absent or null is `default`; anything else is a 400."""
    value = event.get(key)
    if value is None:
        return default
    if not isinstance(value, kinds):
        raise _bad_event(f"the event's {key!r} is a {type(value).__name__}, not a "
                         + " or ".join("dict" if kind is dict else kind.__name__ for kind in kinds))
    return value


def _strings(mapping: dict) -> dict[str, str]:
    return {str(k): str(v) for k, v in mapping.items()}


def _request(event: Any, max_bytes: int) -> tuple[str, dict[str, str], dict[str, str], bytes, bool]:
    """(method, headers, query, body, whether the body came base64-encoded) of a REST or HTTP API event.

    Every field is checked before it is used, and a body over `max_bytes`
    (declared in Content-Length or actual) is refused before it is decoded.
    """
    if not isinstance(event, dict):
        raise _bad_event(f"the event is a {type(event).__name__}, not a dict")
    context = _field(event, "requestContext", (dict,), {})
    method = _field(event, "httpMethod", (str,), "") or _field(_field(context, "http", (dict,), {}),
                                                                "method", (str,), "")
    headers = {k.lower(): v for k, v in _strings(_field(event, "headers", (dict,), {})).items()}
    query = _strings(_field(event, "queryStringParameters", (dict,), {}))
    body = _field(event, "body", (str, bytes), "")
    encoded = _field(event, "isBase64Encoded", (bool,), False)
    declared = headers.get("content-length", "")
    # base64 takes 4 characters for 3 bytes; text takes at least one character per byte
    longest = (max_bytes + 2) // 3 * 4 if encoded else max_bytes
    if len(body) > longest or (declared.isascii() and declared.isdigit() and int(declared) > max_bytes):
        raise too_large(max_bytes)
    if encoded:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "bad_event", "isBase64Encoded is true but the body is not valid base64") from None
    elif isinstance(body, str):
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: JSON allows them, UTF-8 does not
            raise _bad_event("the body text is not valid Unicode; send the image base64-encoded") from None
    else:
        data = body
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
        method, headers, query, body, encoded = _request(event, _OPTIONS.max_upload_bytes)
        model = _model()
        name = Path(model.path).stem
        if method == "GET":
            return _response(200, describe_model(model).brief())
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
            raise RequestError(400, exc.reason, str(exc).replace("image bytes: ", "the upload: ", 1) + hint) from None
        decoded = time.perf_counter()
        ranked = model.rank(model.class_scores(model.run(prepared.pixels[None])), k)[0]
        done = time.perf_counter()
        timing = {"decode": (decoded - started) * 1000.0, "inference": (done - decoded) * 1000.0,
                  "total": (done - started) * 1000.0}
        return _response(200, predict_answer(name, ranked, prepared.notes, timing))
    except RequestError as exc:
        return _response(exc.status, {"error": str(exc)}, exc.headers)
    except _Unconfigured as exc:
        return _response(500, {"error": str(exc)})
    except OptionError as exc:
        return _response(400, {"error": str(exc)})
    except EdgeliteError as exc:  # the model cannot be loaded: the deployment's problem, said plainly
        log.error("request %s: %s", request_id, exc)
        return _response(500, {"error": f"{exc} (request id {request_id})", "request_id": request_id})
    except Exception:
        log.exception("request %s failed", request_id)
        return _response(500, {"error": f"internal error; the log has the details under request id {request_id}",
                                "request_id": request_id})
