"""`edgelite serve`: any artifact as an HTTP inference service, with a page to try it."""

from __future__ import annotations

from pathlib import Path

import click

from edgelite.cli.common import note, safe_text
from edgelite.serve.options import ServeOptions

DEFAULTS = ServeOptions()


@click.command("serve")
@click.argument("model_paths", metavar="MODEL...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads of each model's interpreter.")
@click.option("--instances", default=DEFAULTS.instances, show_default=True, type=click.IntRange(min=1),
              help="Batches of one model run at once, each on its own interpreter; for a small model, "
                   "--threads 1 --instances <cores> spends the least CPU per image.")
@click.option("--max-batch", default=DEFAULTS.max_batch, show_default=True, type=click.IntRange(min=1),
              help="Most images run as one inference call.")
@click.option("--max-delay-ms", default=DEFAULTS.max_delay_ms, show_default=True, type=click.FloatRange(min=0),
              help="How long a request waits for others to share its batch.")
@click.option("--max-upload-mb", default=DEFAULTS.max_upload_mb, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Largest request body (larger: 413).")
@click.option("--max-queue", default=DEFAULTS.max_queue, show_default=True, type=click.IntRange(min=1),
              help="Most requests one model holds at once (more: 503 with Retry-After).")
@click.option("--decode-workers", type=click.IntRange(min=1), help="Threads decoding images [default: up to 4].")
@click.option("--top-k", default=DEFAULTS.top_k, show_default=True, type=click.IntRange(min=1),
              help="Classes in a /predict answer when the request does not say.")
@click.option("--reload-on-change", is_flag=True,
              help="Swap in a changed model file once it loads and passes a test prediction.")
@click.option("--drain-timeout", default=DEFAULTS.drain_timeout_s, show_default=True, type=click.FloatRange(min=0),
              help="Seconds in-flight requests get to finish after SIGTERM.")
@click.option("--body-timeout", default=DEFAULTS.body_timeout_s, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds a request body may take to arrive (slower: 408, connection closed).")
@click.option("--max-readers", default=DEFAULTS.max_readers, show_default=True, type=click.IntRange(min=1),
              help="Most request bodies read at once, over all models (more: 503).")
@click.option("--decode-budget-mb", default=DEFAULTS.decode_budget_mb, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Decoded image memory all decodes together may hold; larger decodes wait, small ones go ahead.")
def serve_command(model_paths: tuple[Path, ...], host: str, port: int, threads, instances: int, max_batch: int,
                  max_delay_ms: float, max_upload_mb: float, max_queue: int, decode_workers, top_k: int,
                  reload_on_change: bool, drain_timeout: float, body_timeout: float, max_readers: int,
                  decode_budget_mb: float) -> None:
    """Serve .tflite or .onnx artifacts over HTTP until SIGTERM or Ctrl+C.

    \b
    Endpoints:
      GET  /                         a page to drop a photo on and see its classes
      POST /predict                  an image (raw body or multipart field 'file'),
                                     ?top_k=N; /models/NAME/predict for each model
      GET  /v2/health/live|ready     the KServe v2 / Triton inference protocol:
      GET  /v2/models/NAME           metadata, and
      POST /v2/models/NAME/infer     tensors (pixels or encoded images)
      GET  /metrics                  Prometheus metrics

    Models are named after their files (scratch_int8.tflite is scratch_int8);
    when two files share a name, a later one gets its format appended
    (scratch_int8.tflite and scratch_int8.onnx are scratch_int8 and
    scratch_int8_onnx). /predict uses the first. Versioned v2 paths
    (/v2/models/NAME/versions/1/...) work too. Requests arriving within
    --max-delay-ms run as one batch. SIGTERM finishes the requests in flight,
    then exits 0.

    \b
    Example:
      edgelite serve artifacts/model_int8.tflite artifacts/model_int8.onnx
      curl -F file=@photo.jpg http://127.0.0.1:8000/predict
      curl -F file=@photo.jpg http://127.0.0.1:8000/models/model_int8_onnx/predict
    """
    from edgelite.serve import create_app, load_models, run

    options = ServeOptions(threads=threads, instances=instances, max_batch=max_batch, max_delay_ms=max_delay_ms,
                           max_upload_mb=max_upload_mb, max_queue=max_queue, decode_workers=decode_workers,
                           top_k=top_k, reload_on_change=reload_on_change, drain_timeout_s=drain_timeout,
                           body_timeout_s=body_timeout, max_readers=max_readers, decode_budget_mb=decode_budget_mb)
    models = load_models(model_paths, threads=threads)
    for name, model in models.items():
        for message in model.assumptions:
            note(f"{name}: {message}")
    app = create_app(models, options)
    for line in start_lines(models, host, port):
        click.echo(line, err=True)
    run(app, host, port, options)


def start_lines(models: dict, host: str, port: int) -> list[str]:
    """What `serve` says before uvicorn starts: each model with its backend and URL, and the page."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a browser cannot open 0.0.0.0
    base = f"http://{f'[{shown}]' if ':' in shown else shown}:{port if port else '<free port>'}"
    lines = []
    for position, (name, model) in enumerate(models.items()):
        precision = model.metadata.precision if model.metadata else "unknown precision"
        default = ", also /predict" if position == 0 else ""
        lines.append(f"model {safe_text(name)}: {safe_text(model.path)} ({model.format} {precision}, "
                     f"{model.backend_name}) at {base}/models/{safe_text(name)}/predict{default}")
    lines.append(f"page: {base}/   (Ctrl+C or SIGTERM stops the server)")
    return lines


COMMANDS = [serve_command]
