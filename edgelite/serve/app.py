"""`create_app(models, options)`: the ASGI app serving models over both protocols, with its page and metrics."""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources
from typing import AsyncIterator, Mapping, Optional, Sequence, Union

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from edgelite.runtime import Model
from edgelite.serve import predict_api, v2
from edgelite.serve.core import InferenceCore
from edgelite.serve.http import RequestLog, http_exception
from edgelite.serve.options import ServeOptions
from edgelite.serve.reload import watch


def page() -> bytes:
    """The page at GET /: one plain HTML file in the package, no build step, nothing from a CDN."""
    return resources.files("edgelite.serve").joinpath("static/index.html").read_bytes()


def create_app(models: Union[Mapping[str, Model], Sequence[Model]],
               options: Optional[ServeOptions] = None) -> Starlette:
    """Serve loaded models over HTTP: /predict, the v2 inference protocol, /metrics and a page at /.

    Args:
        models: models by name, or a list of models named after their files.
        options: limits and behaviour of the service (defaults: `ServeOptions()`).

    Returns:
        The ASGI app; run it with uvicorn (`edgelite serve` does), or any ASGI server.
        Its lifespan warms each model up, starts the batchers and, with
        `reload_on_change`, the file watcher.

    Raises:
        OptionError: no models, or two with the same name.
    """
    options = options or ServeOptions()
    core = InferenceCore(models, options)
    html = page()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await core.start()
        watcher = asyncio.create_task(watch(core), name="edgelite-reload") if options.reload_on_change else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await core.stop()

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    async def metrics(request: Request) -> Response:
        body, content_type = core.metrics.render()
        return Response(body, headers={"Content-Type": content_type})

    # /predict first: the router tries routes in order, and it is the route every upload takes
    routes = [*predict_api.routes(core), Route("/", index, methods=["GET"]),
              Route("/metrics", metrics, methods=["GET"]), *v2.routes(core)]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_exception},
                    middleware=[Middleware(RequestLog, metrics=core.metrics)])
    app.state.core = core
    return app
