"""The /predict protocol's request and answer: an image in (raw body or multipart field `file`), ranked classes out.

Shared by the HTTP service and the Lambda handler, so both accept and refuse
the same uploads with the same messages and answer with the same JSON.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from edgelite.runtime import Prediction
from edgelite.errors import RequestError

FILE_FIELD = "file"
DIGITS = 6
RAW_TYPES = ("application/octet-stream",)
HOW_TO_SEND = ("send the image as the multipart field 'file' (curl -F file=@photo.jpg) or as the raw body "
               "with Content-Type image/jpeg, image/png, ... or application/octet-stream")


def media_type(content_type: Optional[str]) -> tuple[str, dict[str, str]]:
    """The media type of a Content-Type header, lower case, and its parameters."""
    if not content_type:
        return "", {}
    head, *params = content_type.split(";")
    options = {}
    for param in params:
        key, _, value = param.strip().partition("=")
        options[key.strip().lower()] = value.strip().strip('"')
    return head.strip().lower(), options


def _image_type(media: str) -> bool:
    return media == "" or media in RAW_TYPES or media.startswith("image/")


def check_upload_type(content_type: Optional[str]) -> None:
    """Refuse with 415, before reading the body, a content type that cannot hold an image."""
    media, _ = media_type(content_type)
    if media != "multipart/form-data" and not _image_type(media):
        raise RequestError(415, "unsupported_media", f"unsupported content type {media!r}; {HOW_TO_SEND}")


def image_bytes(content_type: Optional[str], body: bytes, max_bytes: int) -> bytes:
    """The encoded image a request carries.

    Raises:
        RequestError: 413 over `max_bytes`, 415 for a content type that is not an
            image, 400 for an empty body or a multipart form without one `file`.
    """
    if len(body) > max_bytes:
        raise too_large(max_bytes)
    media, params = media_type(content_type)
    if media == "multipart/form-data":
        data = _multipart_file(body, params.get("boundary", ""))
    else:
        check_upload_type(content_type)
        data = body
    if not data:
        raise RequestError(400, "empty", f"the request holds no image; {HOW_TO_SEND}")
    return data


def too_large(max_bytes: int) -> RequestError:
    """The 413 answer for a body over the limit."""
    return RequestError(413, "too_large", f"the upload is over the {max_bytes / (1024 * 1024):g} MiB limit "
                                          "(--max-upload-mb); send a smaller image")


def _multipart_file(body: bytes, boundary: str) -> bytes:
    try:
        from python_multipart.multipart import MultipartParser
        from python_multipart.exceptions import FormParserError
    except ImportError:
        from edgelite.errors import missing_dependency

        raise missing_dependency("python-multipart", "serve") from None
    if not boundary:
        raise RequestError(400, "bad_form", "multipart/form-data without a boundary parameter; " + HOW_TO_SEND)
    parts: list[dict] = []
    header: dict[str, bytearray] = {}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header.setdefault("field", bytearray()).extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header.setdefault("value", bytearray()).extend(data[start:end])

    def on_header_end() -> None:
        name = bytes(header.get("field", b"")).decode("latin-1").strip().lower()
        parts[-1]["headers"][name] = bytes(header.get("value", b"")).decode("latin-1").strip()
        header.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"].extend(data[start:end])

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data})
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise RequestError(400, "bad_form", f"malformed multipart form ({exc}); {HOW_TO_SEND}") from None
    return _the_file(parts)


def _the_file(parts: list[dict]) -> bytes:
    files = []
    for part in parts:
        _, disposition = media_type("form-data;" + part["headers"].get("content-disposition", "").partition(";")[2])
        name = disposition.get("name", "")
        if name != FILE_FIELD:
            raise RequestError(400, "bad_form", f"unknown form field {name!r}; {HOW_TO_SEND}")
        media, _ = media_type(part["headers"].get("content-type"))
        if not _image_type(media):
            raise RequestError(415, "unsupported_media", f"the field 'file' has content type {media!r}, "
                                                         "not an image; " + HOW_TO_SEND)
        files.append(bytes(part["data"]))
    if len(files) != 1:
        raise RequestError(400, "bad_form", f"expected one field 'file' in the form, got {len(files)}; "
                                            "send one image per request")
    return files[0]


def top_k(query: Mapping[str, str], default: int, allowed: tuple[str, ...] = ("top_k",)) -> int:
    """The `top_k` query parameter (default when absent); unknown parameters are refused."""
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise RequestError(400, "bad_option", f"unknown query parameter {unknown[0]!r}; expected only "
                                              + ", ".join(allowed))
    raw = query.get("top_k")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise RequestError(400, "bad_option", f"top_k must be a whole number of at least 1, got {raw!r}")
    return value


def predict_answer(model: str, ranked: Sequence[Prediction], notes: Sequence[str],
                   timing_ms: Mapping[str, float]) -> dict:
    """`{"model", "predictions": [{"label", "score"}...], "notes", "timing_ms"}`."""
    return {"model": model,
            "predictions": [{"label": p.label, "score": round(p.score, DIGITS)} for p in ranked],
            "notes": list(notes),
            "timing_ms": {key: round(value, 3) for key, value in timing_ms.items()}}
