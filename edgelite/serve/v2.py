"""The Open Inference Protocol (KServe v2, as Triton and KServe speak it) over the inference core.

A served model takes one input, either `pixels` (FP32 or UINT8 raw 0-255 RGB,
shape [n, H, W, 3]) or `image` (BYTES, shape [n]: encoded JPEG/PNG/... files,
base64 strings in JSON), and gives one output, `scores` (FP32 [n, classes],
class probabilities in label order; with the classification extension,
BYTES "score:index:label" strings). Tensors travel as JSON or with Triton's
binary tensor extension (what `tritonclient` sends by default).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import struct
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgelite import __version__
from edgelite.runtime import Model
from edgelite.serve.core import InferenceCore, ModelCore
from edgelite.serve.http import BATCH, MODEL, answers_errors, json_body, read_body, whole_number
from edgelite.errors import RequestError
from edgelite.serve.predict_format import media_type

PIXELS, IMAGE, SCORES = "pixels", "image", "scores"
PIXEL_TYPES = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
HEADER_LENGTH = "inference-header-content-length"
REQUEST_KEYS = {"id", "parameters", "inputs", "outputs"}
REQUEST_PARAMETERS = {"binary_data_output"}
INPUT_KEYS = {"name", "shape", "datatype", "parameters", "data"}
INPUT_PARAMETERS = {"binary_data_size"}
OUTPUT_KEYS = {"name", "parameters"}
OUTPUT_PARAMETERS = {"binary_data", "classification"}
BODY_TYPES = ("", "application/json", "application/octet-stream")


def _bad(message: str) -> RequestError:
    return RequestError(400, "bad_tensor", message)


def _expected_inputs(model: Model) -> str:
    return (f"send one input: {PIXELS!r} (FP32 or UINT8 raw 0-255 RGB, shape [n, {model.height}, {model.width}, 3]) "
            f"or {IMAGE!r} (BYTES, shape [n], encoded images; base64 strings in JSON)")


@dataclass(frozen=True)
class InferRequest:
    """A checked inference request: raw pixels or encoded images, and how to answer."""

    id: Optional[str]
    pixels: Optional[np.ndarray]
    images: Optional[list[bytes]]
    binary: bool
    classification: Optional[int]


def _keys(what: str, given: Any, allowed: set[str]) -> dict:
    if not isinstance(given, dict):
        raise _bad(f"{what} must be a JSON object, got {type(given).__name__}")
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise _bad(f"unknown {what} field {unknown[0]!r}; expected some of {', '.join(sorted(allowed))}")
    return given


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{what} must be true or false, got {value!r}")
    return value


def parse_infer(body: bytes, header_length: Optional[str], model: Model, max_batch: int) -> InferRequest:
    """Read and check a v2 inference request (JSON, or JSON then binary tensors); 400 naming what is wrong."""
    if header_length is not None:
        if not whole_number(header_length) or int(header_length) > len(body):
            raise _bad(f"Inference-Header-Content-Length {header_length!r} is not a length within the "
                       f"{len(body)}-byte body")
        document, binary = json_body(body[:int(header_length)]), memoryview(body)[int(header_length):]
    else:
        document, binary = json_body(body), memoryview(b"")
    request = _keys("request", document, REQUEST_KEYS)
    parameters = _keys("request parameters", request.get("parameters", {}), REQUEST_PARAMETERS)
    binary_default = _flag(parameters.get("binary_data_output", False), "binary_data_output")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise _bad(f"expected 1 input, got {len(inputs) if isinstance(inputs, list) else 'none'}; "
                   + _expected_inputs(model))
    tensor = _keys("input", inputs[0], INPUT_KEYS)
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if name not in (PIXELS, IMAGE):
        raise _bad(f"unknown input {name!r}; {_expected_inputs(model)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise _bad(f"the shape of input {name!r} must be a list of whole numbers, got {shape!r}")
    raw = _binary_part(tensor, binary)
    if raw is None and "data" not in tensor:
        raise _bad(f"input {name!r} has neither data nor parameters.binary_data_size")
    if name == PIXELS:
        pixels, images = _pixels(datatype, shape, tensor.get("data"), raw, model, max_batch), None
    else:
        pixels, images = None, _images(datatype, shape, tensor.get("data"), raw, max_batch)
    binary_output, classification = _outputs(request.get("outputs"), binary_default)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad(f"the request id must be a string, got {request_id!r}")
    return InferRequest(request_id, pixels, images, binary_output, classification)


def _binary_part(tensor: dict, binary: memoryview) -> Optional[bytes]:
    parameters = _keys("input parameters", tensor.get("parameters", {}), INPUT_PARAMETERS)
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size != len(binary):
        raise _bad(f"binary_data_size {size!r} does not match the {len(binary)} bytes after the JSON header")
    return bytes(binary)


def _pixels(datatype: Any, shape: list[int], data: Any, raw: Optional[bytes], model: Model,
            max_batch: int) -> np.ndarray:
    if datatype not in PIXEL_TYPES:
        hint = f"; send encoded images as the input {IMAGE!r}" if datatype == "BYTES" else ""
        raise _bad(f"input {PIXELS!r} takes datatype FP32 or UINT8 (raw 0-255 RGB), got {datatype!r}{hint}")
    wanted = [model.height, model.width, 3]
    if len(shape) != 4 or shape[1:] != wanted or not 1 <= shape[0] <= max_batch:
        raise _bad(f"input {PIXELS!r} must have shape [n, {', '.join(map(str, wanted))}] with n from 1 to "
                   f"{max_batch} (--max-batch), got {shape}")
    count = int(np.prod(shape))
    dtype = PIXEL_TYPES[datatype]
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise _bad(f"input {PIXELS!r}: {len(raw)} bytes of binary data, expected {count * dtype.itemsize} "
                       f"for shape {shape} of {datatype}")
        values = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    else:
        values = _numbers(data, datatype)
    if values.size != count:
        raise _bad(f"input {PIXELS!r}: {values.size} values, expected {count} for shape {shape}")
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 255:
        raise _bad(f"input {PIXELS!r} must hold raw RGB values from 0 to 255")
    return values.reshape(shape)


def _numbers(data: Any, datatype: str) -> np.ndarray:
    try:
        values = np.asarray(data, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise _bad(f"input {PIXELS!r}: data must be a flat or nested list of numbers") from None
    if datatype == "UINT8" and not np.array_equal(values, np.round(values)):
        raise _bad(f"input {PIXELS!r}: UINT8 data must be whole numbers")
    return values.astype(np.float32)


def _images(datatype: Any, shape: list[int], data: Any, raw: Optional[bytes], max_batch: int) -> list[bytes]:
    if datatype != "BYTES":
        hint = f"; send raw pixels as the input {PIXELS!r}" if datatype in PIXEL_TYPES else ""
        raise _bad(f"input {IMAGE!r} takes datatype BYTES (encoded images), got {datatype!r}{hint}")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or not 1 <= shape[0] <= max_batch:
        raise _bad(f"input {IMAGE!r} must have shape [n] or [n, 1] with n from 1 to {max_batch} (--max-batch), "
                   f"got {shape}")
    images = _length_prefixed(raw) if raw is not None else _base64_strings(data)
    if len(images) != shape[0]:
        raise _bad(f"input {IMAGE!r}: {len(images)} images, expected {shape[0]} for shape {shape}")
    return images


def _length_prefixed(raw: bytes) -> list[bytes]:
    """Triton's binary BYTES layout: each element is a 4-byte little-endian length, then the bytes."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise _bad(f"input {IMAGE!r}: binary BYTES data ends inside a length prefix")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise _bad(f"input {IMAGE!r}: an element claims {size} bytes, only {len(raw) - offset} remain")
        items.append(raw[offset:offset + size])
        offset += size
    return items


def _base64_strings(data: Any) -> list[bytes]:
    if isinstance(data, list) and all(isinstance(row, list) and len(row) == 1 for row in data):
        data = [row[0] for row in data]
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise _bad(f"input {IMAGE!r}: JSON data must be a list of base64 strings, one encoded image each")
    try:
        return [base64.b64decode(item, validate=True) for item in data]
    except (binascii.Error, ValueError):
        raise _bad(f"input {IMAGE!r}: an element is not valid base64") from None


def _outputs(outputs: Any, binary_default: bool) -> tuple[bool, Optional[int]]:
    if outputs is None:
        return binary_default, None
    if not isinstance(outputs, list) or len(outputs) != 1:
        raise _bad(f"expected at most 1 requested output ({SCORES!r}), got {outputs!r}")
    output = _keys("output", outputs[0], OUTPUT_KEYS)
    if output.get("name") != SCORES:
        raise _bad(f"unknown output {output.get('name')!r}; the model has one output, {SCORES!r}")
    parameters = _keys("output parameters", output.get("parameters", {}), OUTPUT_PARAMETERS)
    binary = _flag(parameters.get("binary_data", binary_default), "binary_data")
    classification = parameters.get("classification")
    if classification is not None and (not isinstance(classification, int) or isinstance(classification, bool)
                                       or classification < 1):
        raise _bad(f"classification must be a whole number of at least 1, got {classification!r}")
    return binary, classification


def answer(name: str, parsed: InferRequest, scores: np.ndarray, model: Model) -> Response:
    """The inference response: JSON, or JSON then binary tensors when the client asked for them."""
    if parsed.classification:
        ranked = model.rank(scores, parsed.classification)
        strings = [f"{p.score:f}:{p.index}:{p.label}" for row in ranked for p in row]
        output = {"name": SCORES, "datatype": "BYTES", "shape": [len(ranked), len(ranked[0])]}
        payload = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in strings)
        data: list = strings
    else:
        output = {"name": SCORES, "datatype": "FP32", "shape": list(scores.shape)}
        payload = np.ascontiguousarray(scores, dtype="<f4").tobytes()
        data = [float(v) for v in scores.ravel()]
    document: dict[str, Any] = {"model_name": name, "outputs": [output]}
    if parsed.id is not None:
        document["id"] = parsed.id
    if not parsed.binary:
        output["data"] = data
        return JSONResponse(document)
    output["parameters"] = {"binary_data_size": len(payload)}
    header = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return Response(header + payload, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})


def metadata(model_core: ModelCore) -> dict:
    """GET /v2/models/{name}: tensors, datatypes and shapes, and edgelite's own description."""
    model = model_core.model
    return {
        "name": model_core.name,
        "versions": versions(model),
        "platform": f"edgelite_{model.format}",
        "inputs": [{"name": PIXELS, "datatype": "FP32", "shape": [-1, model.height, model.width, 3]},
                   {"name": IMAGE, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": SCORES, "datatype": "FP32", "shape": [-1, len(model.labels)]}],
        "edgelite": model_core.describe() | {
            "max_batch": model_core.options.max_batch,
            "inputs": f"{_expected_inputs(model)}; UINT8 is accepted for {PIXELS!r} too",
            "outputs": f"{SCORES!r}: class probabilities in label order; ask for the classification "
                       "extension (parameters.classification: k) to get 'score:index:label' strings"},
    }


def routes(core: InferenceCore) -> list[Route]:
    """The v2 routes over one inference core."""

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"ready": core.ready}, status_code=200 if core.ready else 503)

    async def server(request: Request) -> JSONResponse:
        return JSONResponse({"name": "edgelite", "version": __version__,
                             "extensions": ["binary_tensor_data", "classification"]})

    @answers_errors
    async def model_metadata(request: Request) -> JSONResponse:
        return JSONResponse(metadata(versioned(core, request)))

    @answers_errors
    async def model_ready(request: Request) -> JSONResponse:
        model_core = versioned(core, request)
        return JSONResponse({"name": model_core.name, "ready": core.ready},
                            status_code=200 if core.ready else 503)

    @answers_errors
    async def infer(request: Request) -> Response:
        model_core = versioned(core, request)
        request.scope[MODEL] = model_core.name
        media, _ = media_type(request.headers.get("content-type"))
        if media not in BODY_TYPES:
            raise RequestError(415, "unsupported_media", f"unsupported content type {media!r}; send the "
                                                         "inference request as application/json")
        body = await read_body(request, model_core)  # a slow client holds a reader, not a queue place
        with model_core.slot():
            model = model_core.model
            parsed = await model_core.in_decode_pool(parse_infer, body, request.headers.get(HEADER_LENGTH),
                                                     model, core.options.max_batch)
            pixels = parsed.pixels
            if parsed.images is not None:
                prepared = await asyncio.gather(*(model_core.decode(data, f"image {i}", model)
                                                  for i, data in enumerate(parsed.images)))
                pixels = np.stack([p.pixels for p, _ in prepared])
            result = await model_core.infer(pixels, model)
        request.scope[BATCH] = result.batch_size
        return answer(model_core.name, parsed, result.scores, model)

    return [Route("/v2", server, methods=["GET"]),
            Route("/v2/health/live", live, methods=["GET"]),
            Route("/v2/health/ready", ready, methods=["GET"]),
            *(Route(f"/v2/models/{{name}}{version}", model_metadata, methods=["GET"]) for version in VERSION_PATHS),
            *(Route(f"/v2/models/{{name}}{version}/ready", model_ready, methods=["GET"]) for version in VERSION_PATHS),
            *(Route(f"/v2/models/{{name}}{version}/infer", infer, methods=["POST"]) for version in VERSION_PATHS)]


# The protocol's paths name a version or not (the OpenAPI file lists only the versioned ones;
# tritonclient uses them whenever a version is given): both reach the same handlers.
VERSION_PATHS = ("", "/versions/{version}")
VERSION = "1"


def versions(model: Model) -> list[str]:
    """The versions a served model answers to: one, "1", as an artifact file holds one model."""
    return [VERSION]


def versioned(core: InferenceCore, request: Request) -> ModelCore:
    """The model a v2 path names; with a version, 404 unless the model has it (naming the versions it has)."""
    model_core = core.get(request.path_params["name"])
    version = request.path_params.get("version")
    known = versions(model_core.model)
    if version is not None and version not in known:
        raise RequestError(404, "unknown_version", f"model {model_core.name!r} has no version {version!r}; "
                                                   f"its versions: {', '.join(repr(v) for v in known)}")
    return model_core
