"""Our own protocol: `POST /predict` (and `/models/{name}/predict`) with an image, ranked classes back."""

from __future__ import annotations

import math
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edgelite.serve.core import InferenceCore
from edgelite.serve.http import BATCH, MODEL, JSONAnswer, answers_errors, read_body
from edgelite.serve.predict_format import check_upload_type, image_bytes, predict_answer, top_k


def routes(core: InferenceCore) -> list[Route]:
    """The routes of the /predict protocol over one inference core."""

    @answers_errors
    async def predict(request: Request) -> JSONAnswer:
        started = time.perf_counter()
        model_core = core.get(request.path_params.get("name"))
        request.scope[MODEL] = model_core.name
        # No query string (the usual upload): the default, without building Starlette's QueryParams
        k = top_k(request.query_params, core.options.top_k) if request.scope.get("query_string") else core.options.top_k
        content_type = request.headers.get("content-type")
        check_upload_type(content_type)
        limit = core.options.max_upload_bytes
        body = await read_body(request, model_core)  # a slow client holds a reader, not a queue place
        read = time.perf_counter()
        with model_core.slot():
            data = image_bytes(content_type, body, limit)
            prepared, model = await model_core.decode(data)
            decoded = time.perf_counter()
            result = await model_core.infer(prepared.pixels[None], model)
        request.scope[BATCH] = result.batch_size
        ranked = model.rank(result.scores, k, result.order)[0]
        if not all(math.isfinite(p.score) for p in ranked):  # a 500, as when json refused them: orjson writes null
            raise ValueError(f"model {model_core.name!r} gave non-finite scores: {[p.score for p in ranked]}")
        timing = {"read": (read - started) * 1000.0, "decode": (decoded - read) * 1000.0,
                  "queue": result.queue_ms, "inference": result.inference_ms,
                  "total": (time.perf_counter() - started) * 1000.0}
        return JSONAnswer(predict_answer(model_core.name, ranked, prepared.notes, timing))

    @answers_errors
    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"default": core.default,
                             "models": [model_core.describe() for model_core in core.models.values()]})

    return [Route("/predict", predict, methods=["POST"]),
            Route("/models/{name}/predict", predict, methods=["POST"]),
            Route("/models", models, methods=["GET"])]

