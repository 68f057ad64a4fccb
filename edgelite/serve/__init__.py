"""Serve an artifact over HTTP: our /predict, the KServe v2 protocol, metrics and a page.

    from edgelite.runtime import load
    from edgelite.serve import ServeOptions, create_app
    app = create_app([load("model_int8.tflite")], ServeOptions(max_batch=8))   # any ASGI server runs it

`edgelite serve MODEL...` runs it with uvicorn. `edgelite.serve.lambda_handler`
answers AWS API Gateway events the way /predict answers requests, with the
light runtime alone.
"""

from __future__ import annotations

from typing import Any

from edgelite.serve.options import ServeOptions

__all__ = ["ServeOptions", "create_app", "lambda_handler", "load_models", "run"]

# Imported on first use: the HTTP stack (Starlette, prometheus-client, uvicorn) only when
# asked for, so the CLI starts fast and the Lambda handler needs none of it.
_LAZY = {"create_app": ("edgelite.serve.app", "starlette"), "run": ("edgelite.serve.server", "uvicorn"),
         "load_models": ("edgelite.serve.naming", ""), "lambda_handler": ("edgelite.serve.aws_lambda", "")}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'edgelite.serve' has no attribute {name!r}")
    import importlib

    module, package = _LAZY[name]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        if not package or exc.name is None or exc.name.split(".")[0] in ("edgelite",):
            raise
        from edgelite.errors import missing_dependency

        raise missing_dependency(exc.name.split(".")[0], "serve") from None
