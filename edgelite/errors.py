"""Exceptions raised by the edgelite library.

The CLI turns every `EdgeliteError` into one line on stderr and exit code 1.
"""

from __future__ import annotations

from typing import Mapping, Optional


class EdgeliteError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class ImageError(EdgeliteError):
    """An input image is missing, unreadable, truncated or unsafe to decode.

    Attributes:
        reason: a short fixed name for what is wrong, so that callers (the
            server's metrics, the Lambda handler) classify the error without
            reading its text: "bad_image" (unreadable, truncated, wrong shape),
            "bomb" (over the pixel limit) or "decoded_too_large" (over the
            decoded-bytes limit).
    """

    def __init__(self, message: str, reason: str = "bad_image"):
        super().__init__(message)
        self.reason = reason


class ModelFileError(EdgeliteError):
    """A model artifact or checkpoint is missing, corrupt or of an unknown kind."""


class OptionError(EdgeliteError):
    """An option has a value edgelite does not know."""


class OutputExistsError(OptionError):
    """An output would replace a file that is already there; --force (force=True) allows it."""


class MissingLabelsError(OptionError):
    """A checkpoint records no class labels and none were given."""


class DependencyError(EdgeliteError):
    """An optional dependency is needed for this step and is not installed."""


class ConversionError(EdgeliteError):
    """A conversion could not produce a valid artifact."""


class DatasetError(EdgeliteError):
    """A dataset folder does not have the expected layout or content."""


def missing_dependency(package: str, extra: str) -> DependencyError:
    """Build the error for an optional package that is not installed."""
    return DependencyError(
        f"this step needs {package}, which is not installed; "
        f"install it with: pip install 'edgelite[{extra}]'"
    )


class ParityError(EdgeliteError):
    """An artifact misses its --strict parity threshold.

    Attributes:
        report: the whole convert report (the artifacts were written; see its manifest).
    """

    def __init__(self, message: str, report: object = None):
        super().__init__(message)
        self.report = report


class PickError(EdgeliteError):
    """No measured artifact is accurate enough to be picked."""


class RequestError(EdgeliteError):
    """A request `edgelite serve` refuses: its HTTP status (4xx, or 503 when full) and what to send instead.

    Attributes:
        status: the HTTP status code of the answer.
        reason: a short fixed name for metrics ("bad_image", "too_large", ...).
        headers: extra response headers (e.g. Retry-After).
    """

    def __init__(self, status: int, reason: str, message: str, headers: Optional[Mapping[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})
