"""Served models' names: one per artifact, each usable as a part of a URL."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from edgelite.errors import OptionError
from edgelite.runtime import Model, load


def model_names(models: Union[Mapping[str, Model], Sequence[Model]]) -> dict[str, Model]:
    """Models by name: as given, or each file's name without its suffix; names must be unique URL parts.

    Two artifacts of one checkpoint (X_int8.tflite, X_int8.onnx) are served side by side: the first
    keeps the stem (X_int8), a later file whose stem is taken gets its format appended (X_int8_onnx).
    """
    if isinstance(models, Mapping):
        named = dict(models)
    else:
        named = {}
        for model in models:
            path = Path(model.path)
            name = path.stem
            if name in named:  # the same file name in two folders is refused: neither name would say which
                name = f"{path.stem}_{path.suffix.lstrip('.').lower()}"
                if name in named or path.suffix.lower() == Path(named[path.stem].path).suffix.lower():
                    raise OptionError(f"two models are named {path.stem!r} ({named[path.stem].path} and "
                                      f"{model.path}); serve files with different names")
            named[name] = model
    if not named:
        raise OptionError("no model to serve; give at least one .tflite or .onnx file")
    for name in named:
        if not name or "/" in name or name.startswith("."):
            raise OptionError(f"model name {name!r} cannot be part of a URL; rename the file")
    return named


def load_models(paths: Sequence[Union[str, Path]], threads: Optional[int] = None) -> dict[str, Model]:
    """Load each artifact (`load` runs it once); models named after their files.

    Raises:
        ModelFileError: a file is missing or corrupt.
        OptionError: two files have the same name.
    """
    return model_names([load(path, threads=threads) for path in paths])
