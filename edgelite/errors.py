"""Exceptions raised by the edgelite library.

The CLI turns every `EdgeliteError` into one line on stderr and exit code 1.
"""


class EdgeliteError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class ImageError(EdgeliteError):
    """An input image is missing, unreadable, truncated or unsafe to decode."""


class ModelFileError(EdgeliteError):
    """A model artifact or checkpoint is missing, corrupt or of an unknown kind."""


class OptionError(EdgeliteError):
    """An option has a value edgelite does not know."""


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
