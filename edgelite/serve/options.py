"""`ServeOptions`: every limit of the service, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from edgelite.errors import OptionError

MEBIBYTE = 1024 * 1024


@dataclass(frozen=True)
class ServeOptions:
    """How `create_app` runs its models.

    Every queue, pool and upload is bounded by one of these numbers, and each
    bound is visible in `/metrics`.

    Attributes:
        threads: CPU threads of each model's interpreter (None: the backend's default).
        instances: batches of one model run at once, each on its own inference
            thread and interpreter (using up to instances x threads CPU threads).
            On a small model and a CPU with few cores, `threads=1` with one
            instance per core spends less CPU per image than one instance
            with every core.
        max_batch: most images run as one inference call.
        max_delay_ms: how long the first request of a batch waits for others to join it.
        max_upload_mb: largest request body, in MiB; a larger one gets 413.
        max_queue: most requests one model holds at once (decoding, waiting for or
            inside a batch; a request takes its place once its body is in); one more
            gets 503 with Retry-After.
        body_timeout_s: time a request body may take to arrive, from the headers to
            its last byte; a slower one gets 408 and its connection is closed.
        max_readers: most request bodies read at once, over all models; one more
            gets 503 with Retry-After (a slow client holds a reader, never a queue place).
        decode_budget_mb: decoded image memory, in MiB, all decodes together may
            hold; a decode that does not fit waits while smaller ones that fit go
            ahead (a larger image than the budget runs alone).
        decode_workers: threads decoding images, shared by all models (None: up to 4,
            one per CPU).
        top_k: classes in a /predict answer when the request does not say.
        reload_on_change: watch each model file and swap in a new version once it
            has loaded and passed a test prediction.
        reload_poll_s: how often the model files are checked for a change.
        drain_timeout_s: on SIGTERM, how long in-flight requests may take to finish.
        retry_after_s: the Retry-After a 503 answer carries.
    """

    threads: Optional[int] = None
    instances: int = 1
    max_batch: int = 8
    max_delay_ms: float = 5.0
    max_upload_mb: float = 20.0
    max_queue: int = 64
    decode_workers: Optional[int] = None
    top_k: int = 5
    reload_on_change: bool = False
    reload_poll_s: float = 1.0
    drain_timeout_s: float = 30.0
    retry_after_s: int = 1
    body_timeout_s: float = 15.0
    max_readers: int = 512
    decode_budget_mb: float = 512.0

    def __post_init__(self) -> None:
        _at_least("threads", self.threads, 1, optional=True)
        _at_least("instances", self.instances, 1)
        _at_least("max_batch", self.max_batch, 1)
        _at_least("max_queue", self.max_queue, 1)
        _at_least("decode_workers", self.decode_workers, 1, optional=True)
        _at_least("top_k", self.top_k, 1)
        _at_least("retry_after_s", self.retry_after_s, 0)
        _at_least("max_readers", self.max_readers, 1)
        for name in ("max_delay_ms", "drain_timeout_s"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("max_upload_mb", "reload_poll_s", "body_timeout_s", "decode_budget_mb"):
            if not getattr(self, name) > 0:
                raise OptionError(f"{name} must be more than 0, got {getattr(self, name)}")

    @property
    def max_upload_bytes(self) -> int:
        """The request body limit in bytes."""
        return int(self.max_upload_mb * MEBIBYTE)

    @property
    def decode_budget_bytes(self) -> int:
        """The decoded-image memory budget in bytes."""
        return int(self.decode_budget_mb * MEBIBYTE)


def _at_least(name: str, value: Optional[int], low: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise OptionError(f"{name} must be a whole number of at least {low}, got {value!r}")
