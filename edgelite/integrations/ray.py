"""Bulk `predict` on a Ray cluster: Ray Data schedules, streams and retries; edgelite classifies.

Each actor loads the artifact once and classifies batches of image paths, URIs
(any filesystem pyarrow reads: `s3://`, `gs://`, `file://`) or image bytes
through the runtime's one pipeline (`predict_stream`: the one `preprocess`
with the artifact's own metadata). A row of the result has the fields of
`predict --jsonl`: `image`, `predictions` (ranked `label`, `score`, `index`),
`error` (None, or why that one image could not be read) and `notes`.

    from edgelite.integrations.ray import RayOptions, predict_dataset
    results = predict_dataset(["s3://bucket/a.jpg", "photos/b.png"], "/models/model_int8.tflite",
                              RayOptions(top_k=3))
    results.write_parquet("s3://bucket/results/")

The model file is read by every actor from the same path, so it must be on
each node (a shared volume, or the same path in every image). edgelite itself
must be installed on every node (the actors import this module).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Optional, Sequence, Union

from edgelite.errors import EdgeliteError, ImageError, ModelFileError, OptionError, missing_dependency
from edgelite.modes import Scaling, check_mode
from edgelite.runtime.model import Prediction, Predictions, load, predict_stream
from edgelite.runtime.stdin import InputError

try:
    import pyarrow as pa
    import ray
    import ray.data
except ImportError:
    raise missing_dependency("Ray", "ray") from None

# An image file read from a URI larger than this is an error row, not a read into memory.
MAX_FILE_BYTES = 256 * 2**20
# At most this many input blocks: enough for every actor to get work, few enough to stay cheap to plan.
MAX_BLOCKS = 1000

RESULT_SCHEMA = pa.schema([
    ("image", pa.string()),
    ("predictions", pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64()), ("index", pa.int64())]))),
    ("error", pa.string()),
    ("notes", pa.list_(pa.string())),
])


@dataclass(frozen=True)
class RayOptions:
    """How the work is cut for Ray.

    Attributes:
        top_k: classes per image.
        batch_size: images per actor call (and per interpreter batch).
        actors: model copies running at once (None: the cluster's CPUs / `threads`, at least 1).
        threads: CPUs per actor, used for its interpreter and decoding threads.
        labels: class names, for files without edgelite metadata.
        scaling: pixel scaling, for files without edgelite metadata.
        ordered: results come in input order (Ray holds finished batches back until their turn).
    """

    top_k: int = 3
    batch_size: int = 16
    actors: Optional[int] = None
    threads: int = 1
    labels: Optional[tuple[str, ...]] = None
    scaling: Optional[Scaling] = None
    ordered: bool = True

    def __post_init__(self) -> None:
        for name in ("top_k", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if self.actors is not None and self.actors < 1:
            raise OptionError(f"actors must be at least 1, got {self.actors}")
        if self.scaling is not None:
            check_mode(Scaling, self.scaling)


def _is_uri(source: str) -> bool:
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", source) is not None


class _Reader:
    """Reads URIs through pyarrow filesystems, one filesystem per scheme and host, with a size bound."""

    def __init__(self) -> None:
        # scheme://authority -> (filesystem, characters of the rest that name the authority, not the path)
        self._filesystems: dict[str, tuple[Any, int]] = {}

    def read(self, uri: str) -> bytes:
        from pyarrow import fs

        scheme, rest = uri.split("://", 1)
        key = scheme + "://" + rest.split("/", 1)[0]
        try:
            if key not in self._filesystems:  # a filesystem (an S3 client...) is costly: one per bucket or host
                filesystem, path = fs.FileSystem.from_uri(uri)
                self._filesystems[key] = (filesystem, len(rest) - len(path))
            filesystem, skip = self._filesystems[key]
            path = rest[skip:]
            info = filesystem.get_file_info(path)
            if info.type == fs.FileType.NotFound:
                raise ImageError(f"{uri}: no such file")
            if info.type != fs.FileType.File:
                raise ImageError(f"{uri}: not a file")
            if info.size is not None and info.size > MAX_FILE_BYTES:
                raise ImageError(f"{uri}: {info.size:,} bytes, over the {MAX_FILE_BYTES:,} byte limit for one image")
            with filesystem.open_input_stream(path) as stream:
                data = stream.read(MAX_FILE_BYTES + 1)  # a size the listing did not tell, or that grew
            if len(data) > MAX_FILE_BYTES:
                raise ImageError(f"{uri}: over the {MAX_FILE_BYTES:,} byte limit for one image")
            return data
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise ImageError(f"{uri}: cannot be read ({exc})") from None


class Predictor:
    """The callable class Ray Data runs in each actor: one loaded model, many batches.

    A batch is a pyarrow table with an `image` column (a path or URI) and
    optionally a `bytes` column (the encoded image; then `image` only names it).
    """

    def __init__(self, model_path: str, options: RayOptions):
        self.model = load(model_path, threads=options.threads, labels=options.labels, scaling=options.scaling)
        self.options = options
        self.reader = _Reader()

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        names = [str(name) for name in batch.column("image").to_pylist()]
        columns = batch.column_names
        data = batch.column("bytes").to_pylist() if "bytes" in columns else [None] * len(names)
        where = batch.column("location").to_pylist() if "location" in columns else names
        failed = batch.column("input_error").to_pylist() if "input_error" in columns else [None] * len(names)
        items = [(name, location, image, error) for name, location, image, error in zip(names, where, data, failed)]
        results = predict_stream(items, self._prepare, lambda pixels: self.model.class_scores(self.model.run(pixels)),
                                 self.model.labels, self.options.top_k, batch_size=len(items),
                                 workers=self.options.threads)
        rows = [_row(name, result) for (name, *_), result in zip(items, results)]
        return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)

    def _prepare(self, item: tuple[str, str, Optional[bytes], Optional[str]]):
        """Decode one image; an error names it as the user gave it (a relative path, a URI)."""
        name, location, data, input_error = item
        if input_error is not None:  # a stdin line that is not a path: its error, as `predict` gives it
            raise ImageError(f"{name}: {input_error}")
        try:
            if data is None and not _is_uri(location):
                return self.model.prepare(location)  # a local path: what `predict` does on one machine
            return self.model.prepare(self.reader.read(location) if data is None else data)
        except ImageError as exc:
            message = str(exc)
            for shown in (location, "image bytes"):
                if shown and message.startswith(shown):
                    raise ImageError(name + message[len(shown):]) from None
            raise


def _row(name: str, result: Predictions) -> dict:
    return {"image": name, "error": result.error, "notes": list(result.notes),
            "predictions": [{"label": p.label, "score": p.score, "index": p.index} for p in result]}


def _input_row(source: object) -> dict:
    """One input as a row: a path or URI, the image bytes `predict -` read from stdin, or a stdin line in error."""
    if isinstance(source, InputError):
        return {"image": source.name, "location": "", "bytes": None, "input_error": source.message}
    if isinstance(source, (bytes, bytearray)):
        return {"image": "image bytes", "location": "", "bytes": bytes(source), "input_error": None}
    path = str(source)
    # Actors do not share the driver's working folder: a relative path is read at its absolute location.
    return {"image": path, "location": path if _is_uri(path) else os.path.abspath(path), "bytes": None,
            "input_error": None}


def default_actors(threads: int = 1) -> int:
    """One actor per `threads` CPUs of the connected cluster, at least one."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)


def predict_dataset(sources: Union[Sequence[object], "ray.data.Dataset"], model_path: Union[str, Path],
                    options: RayOptions = RayOptions()) -> "ray.data.Dataset":
    """A Ray Dataset of predictions (lazy: Ray runs it when it is consumed or written).

    Args:
        sources: image paths or URIs (and, as `predict -` reads stdin, image bytes
            and `InputError`s for lines that are not paths), or a Ray Dataset with a `bytes` column of
            encoded images (and a `path` or `image` column naming them, as
            `ray.data.read_binary_files(..., include_paths=True)` gives).
        model_path: the artifact, at this path on every node that runs an actor.
        options: batch size, actors, threads per actor, top-k.

    Returns:
        Rows of `image`, `predictions` (list of `label`, `score`, `index`),
        `error` and `notes`; in input order when `options.ordered`.
    """
    if not ray.is_initialized():
        ray.init()
    if isinstance(sources, ray.data.Dataset):
        names = sources.columns() or []
        if "bytes" not in names:
            raise OptionError(f"the dataset has columns {names}; expected a 'bytes' column of encoded images")
        name = "image" if "image" in names else "path" if "path" in names else None
        inputs = sources.select_columns(["bytes"] + ([name] if name else []))
        inputs = inputs.rename_columns({name: "image"}) if name and name != "image" else inputs
        if name is None:
            inputs = inputs.add_column("image", lambda table: pa.array(["image bytes"] * len(table)),
                                       batch_format="pyarrow")
        # Its read tasks need CPUs too: the pool grows from one actor as Ray finds room, not all at once.
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=options.actors or default_actors(options.threads))
    else:
        rows = [_input_row(source) for source in sources]
        if not rows:
            raise OptionError("no images given")
        blocks = min(MAX_BLOCKS, math.ceil(len(rows) / options.batch_size))
        inputs = ray.data.from_items(rows, override_num_blocks=blocks)
        pool = ray.data.ActorPoolStrategy(size=min(blocks, options.actors or default_actors(options.threads)))
    results = inputs.map_batches(Predictor, fn_constructor_args=(os.path.abspath(model_path), options),
                                 batch_size=options.batch_size, batch_format="pyarrow", num_cpus=options.threads,
                                 compute=pool)
    results.context.execution_options.preserve_order = options.ordered
    return results


def iter_predictions(results: "ray.data.Dataset", batch_size: int = 256) -> Iterator[Predictions]:
    """The rows of `predict_dataset` as runtime `Predictions`, as Ray delivers them."""
    try:
        for table in results.iter_batches(batch_size=batch_size, batch_format="pyarrow"):
            for row in table.to_pylist():
                ranked = [Prediction(p["label"], p["score"], p["index"]) for p in row["predictions"] or ()]
                yield Predictions(ranked, row["notes"] or (), row["image"], row["error"])
    except ray.exceptions.RayError as exc:
        raise _edgelite_error(exc) from None


def _edgelite_error(exc: BaseException) -> BaseException:
    """The EdgeliteError an actor raised (a model it could not load) as one line naming its node, else `exc`."""
    text = str(exc)
    node = re.search(r"\bip=([0-9A-Za-z.:-]+)", text)
    where = f"on the Ray cluster (node {node.group(1)})" if node else "on the Ray cluster"
    found, seen = None, exc
    while seen is not None and found is None:  # the actor's own exception, when Ray kept it
        seen = getattr(seen, "cause", None) or seen.__cause__
        found = seen if isinstance(seen, EdgeliteError) else None
    if found is None:  # else its "ModelFileError: message" line in Ray's report
        for kind in (ModelFileError, OptionError, EdgeliteError):
            if f"{kind.__name__}: " in text:
                found = kind(text.split(f"{kind.__name__}: ", 1)[1].splitlines()[0])
                break
    if found is None:
        return exc
    hint = " (every node must have the model at this path)" if isinstance(found, ModelFileError) else ""
    return type(found)(f"{where}: {found}{hint}")


def connect(address: Optional[str]) -> None:
    """Join the Ray cluster at `address` ("host:port", "auto", "ray://host:port"), or start or find one as Ray does.

    None follows Ray's own rules: RAY_ADDRESS, then a cluster started on this
    machine with `ray start`, else a new local Ray.

    Raises:
        OptionError: nothing answers at the address, or Ray refuses to connect.
    """
    if address and address not in ("auto", "local"):
        _check_reachable(address)
    quiet = os.environ.get("EDGELITE_DEBUG") != "1"
    if quiet:  # the CLI shows its own progress line and one-line errors; EDGELITE_DEBUG=1 shows Ray's logs
        ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        ray.init(address=address or None, logging_level=logging.ERROR if quiet else logging.INFO,
                 log_to_driver=not quiet, ignore_reinit_error=True)
        if quiet:
            for name in ("ray", "ray.data"):
                logging.getLogger(name).setLevel(logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OptionError(f"--ray {address or '(RAY_ADDRESS or local)'}: cannot join the Ray cluster ({first})") \
            from None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an address nothing listens on at once, instead of waiting out Ray's long connect timeout."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise OptionError(f"--ray {address}: expected HOST:PORT (the head's GCS port, 6379 by default), "
                          "ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise OptionError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                          "start one with 'ray start --head' or fix the address") from None


def predict_on_ray(model_path: Union[str, Path], sources: Iterable[object], options: RayOptions,
                   address: Optional[str]) -> Iterator[Predictions]:
    """What `predict --ray` runs: join the cluster now, then stream `Predictions`, leaving Ray when done."""
    hidden = _native_logs_hidden()
    hidden.__enter__()
    try:
        connect(address)
        dataset = predict_dataset(list(sources), model_path, options)
    except BaseException:
        _leave(hidden)
        raise
    return _then_leave(iter_predictions(dataset), hidden)


def _then_leave(results: Iterator[Predictions], hidden: contextlib.AbstractContextManager) -> Iterator[Predictions]:
    try:
        yield from results
    finally:
        _leave(hidden)


def _leave(hidden: contextlib.AbstractContextManager) -> None:
    try:
        if ray.is_initialized():
            ray.shutdown()
    finally:
        hidden.__exit__(None, None, None)


@contextlib.contextmanager
def _native_logs_hidden() -> Iterator[None]:
    """Hide what Ray itself prints in this process; the CLI's own output and error lines go on.

    Ray's C++ core logs to fd 2 (no route to 8.8.8.8 in a closed network,
    constructor arguments in the object store), and its driver prints the
    cluster's error reports, tracebacks of retried tasks included, to
    `sys.stdout`, which would land among JSON lines. The CLI's writer holds its
    stream from before, Python's stderr moves to a copy of fd 2, and both of
    Ray's channels go to /dev/null. EDGELITE_DEBUG=1 keeps every line.
    """
    try:
        fileno = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stderr without a descriptor (tests): nothing to hide
        fileno = None
    if os.environ.get("EDGELITE_DEBUG") == "1" or fileno != 2:
        yield
        return
    saved_out, saved_err = sys.stdout, sys.stderr
    saved_err.flush()
    copy = os.dup(2)
    with open(os.devnull, "w") as sink, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"ray(\.|$)")  # Ray Data's tuning hints, for Ray users
        sys.stdout = sink
        sys.stderr = open(copy, "w", encoding=saved_err.encoding, errors=saved_err.errors, buffering=1,
                          closefd=False)
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            sys.stderr.flush()
            os.dup2(copy, 2)
            sys.stdout, sys.stderr = saved_out, saved_err
            os.close(copy)


class ParquetWriter:
    """Writes `Predictions` as Parquet row groups in `RESULT_SCHEMA`, for runs too big for JSON or CSV.

    Same interface as the CLI's other writers (`start`, `write`, `finish`).
    """

    def __init__(self, out: IO[bytes], rows_per_group: int = 4096):
        self.out, self.rows_per_group = out, rows_per_group
        self.rows: list[dict] = []
        self.writer = None

    def start(self) -> None:
        import pyarrow.parquet as pq

        self.writer = pq.ParquetWriter(self.out, RESULT_SCHEMA)

    def write(self, result: Predictions) -> None:
        self.rows.append(_row(result.source, result))
        if len(self.rows) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=RESULT_SCHEMA))
            self.rows = []

    def finish(self) -> None:
        self._flush()
        self.writer.close()
