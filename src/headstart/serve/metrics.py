"""The server's Prometheus metrics, through the official client, in a registry of the app's own.

Each worker process (``--workers N``) counts its own requests: scrape each, or put one worker per replica.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServeMetrics:
    """Requests and items by model and status, batch sizes, request and forward-pass latencies."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("headstart_requests", "Prediction requests answered, by model and HTTP status.",
                                ["model", "status"], registry=self.registry)
        self.items = Counter("headstart_items", "Items predicted, by model.", ["model"], registry=self.registry)
        self.batch_size = Histogram("headstart_batch_size", "Items per forward pass (dynamic batches), by model.",
                                    ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.latency = Histogram("headstart_request_seconds", "Prediction request latency in seconds, by model.",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.forward = Histogram("headstart_batch_seconds", "Seconds per dynamic batch (preprocessing and "
                                 "forward pass), by model.", ["model"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
