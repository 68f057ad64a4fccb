"""The service's Prometheus metrics, in a registry of its own (one per app)."""

from __future__ import annotations

from edgelite.errors import missing_dependency
from edgelite.serve.options import ServeOptions

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Requests, errors, latency, batch sizes, queue depth and reloads.

    Label values come from fixed sets (route templates, model names, error
    reasons), so the number of series does not grow with the requests seen.
    """

    def __init__(self, options: ServeOptions):
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            raise missing_dependency("prometheus-client", "serve") from None
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("edgelite_requests", "HTTP requests answered, by route, method and status.",
                                ["route", "method", "status"], registry=registry)
        self.errors = Counter("edgelite_request_errors", "Requests answered with an error, by route and reason.",
                              ["route", "reason"], registry=registry)
        self.latency = Histogram("edgelite_request_duration_seconds", "Time from request to answer, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        batch_buckets = sorted({2 ** i for i in range(options.max_batch.bit_length())} | {options.max_batch})
        self.batch_size = Histogram("edgelite_batch_size", "Images per inference call.", ["model"],
                                    buckets=[float(b) for b in batch_buckets], registry=registry)
        self.inference_seconds = Histogram("edgelite_inference_duration_seconds", "Time of one inference call.",
                                           ["model"], buckets=LATENCY_BUCKETS, registry=registry)
        self.queue_depth = Gauge("edgelite_queue_depth",
                                 "Requests a model holds now: decoding, waiting for or in a batch.",
                                 ["model"], registry=registry)
        self.reading = Gauge("edgelite_bodies_reading", "Request bodies being read now, by model.", ["model"],
                             registry=registry)
        self.decode_bytes = Gauge("edgelite_decode_bytes",
                                  "Decoded image memory admitted now (the decode budget's use).", registry=registry)
        self.reloads = Counter("edgelite_model_reloads", "Model file changes seen, by result (swapped or kept_old).",
                               ["model", "result"], registry=registry)
        limits = Gauge("edgelite_limit", "The service's configured limits.", ["name"], registry=registry)
        for name, value in (("max_queue", options.max_queue), ("max_batch", options.max_batch),
                            ("max_delay_ms", options.max_delay_ms), ("max_upload_bytes", options.max_upload_bytes),
                            ("max_readers", options.max_readers), ("body_timeout_s", options.body_timeout_s),
                            ("decode_budget_bytes", options.decode_budget_bytes)):
            limits.labels(name=name).set(value)

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
