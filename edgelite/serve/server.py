"""Run an app with uvicorn: one access line per request, and SIGTERM drains then exits 0."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
from typing import Any

from edgelite.errors import EdgeliteError, missing_dependency
from edgelite.serve.options import ServeOptions

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def _log_to_stderr() -> None:
    logger = logging.getLogger("edgelite.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _drained(signum: int, frame: Any) -> None:
    """Uvicorn raises the stopping signal again once it has drained; by then there is nothing left to do."""


def check_address(host: str, port: int) -> None:
    """Refuse, before uvicorn tries, an address this machine cannot listen on.

    Raises:
        EdgeliteError: the host does not resolve to a local address, or the port is taken.
    """
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise EdgeliteError(f"cannot listen on {where}: the host {host!r} does not resolve "
                            f"({getattr(exc, 'strerror', None) or exc}); use 127.0.0.1, 0.0.0.0 or a local "
                            "address") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            hint = ("another process listens there: stop it or choose another --port" if exc.errno == errno.EADDRINUSE
                    else "use an address of this machine (127.0.0.1, 0.0.0.0)")
            raise EdgeliteError(f"cannot listen on {where}: {exc.strerror or exc}; {hint}") from None


def run(app: Any, host: str = "127.0.0.1", port: int = 8000, options: ServeOptions = ServeOptions()) -> None:
    """Serve `app` with uvicorn until SIGTERM or SIGINT, then finish the requests in flight and return.

    On the signal uvicorn stops accepting connections, lets in-flight requests
    finish for up to `options.drain_timeout_s`, runs the app's shutdown, and
    this function returns (so `edgelite serve` exits 0).

    Raises:
        EdgeliteError: the address cannot be listened on, or the server could
            not start (its log line says why).
    """
    try:
        import uvicorn
    except ImportError:
        raise missing_dependency("uvicorn", "serve") from None
    check_address(host, port)
    _log_to_stderr()
    # loop/http "auto": uvloop and httptools (the [serve] extra) when they are installed, else asyncio and h11.
    config = uvicorn.Config(app, host=host, port=port, access_log=False, lifespan="on", server_header=False,
                            loop="auto", http="auto",
                            timeout_graceful_shutdown=options.drain_timeout_s, log_level="info")
    server = uvicorn.Server(config)
    previous = {sig: signal.signal(sig, _drained) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    except SystemExit:  # uvicorn exits on a start-up failure (e.g. the port was taken since the check)
        raise EdgeliteError(f"the service did not start on {host}:{port}; the log above says why") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise EdgeliteError(f"the service did not start on {host}:{port}; the log above says why")
