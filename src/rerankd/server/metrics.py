"""Prometheus metrics, on a registry of the app's own (several apps can live in one process). The
per-request metrics are labelled by route; what each model's engine does (queue, batches, pairs, score
cache) by `model`, the served name, so a server with several models tells them apart."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
PAIR_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rerankd_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "rerankd_request_duration_seconds",
            "Request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("rerankd_requests_in_flight", "Requests being handled", registry=r)
        model = ["model"]
        self.queue_depth = Gauge("rerankd_queue_depth", "Pairs waiting or being scored", model, registry=r)
        self.batch_pairs = Histogram(
            "rerankd_batch_pairs", "Pairs per model batch", model, buckets=PAIR_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "rerankd_batch_tokens", "Padded tokens per model batch", model, buckets=TOKEN_BUCKETS, registry=r
        )
        self.pairs_scored = Counter("rerankd_pairs_scored", "Pairs scored by the model", model, registry=r)
        self.prompt_tokens = Counter(
            "rerankd_prompt_tokens", "Tokens read by the model (the answers' usage)", model, registry=r
        )
        self.cache_hits = Counter(
            "rerankd_score_cache_hits",
            "Pairs answered from the score cache (--score-cache)",
            model,
            registry=r,
        )
        self.cache_misses = Counter(
            "rerankd_score_cache_misses",
            "Pairs the score cache did not hold (--score-cache)",
            model,
            registry=r,
        )

    def observe_batch(self, model: str, pairs: int, tokens: int) -> None:
        self.batch_pairs.labels(model).observe(pairs)
        self.batch_tokens.labels(model).observe(tokens)
        self.pairs_scored.labels(model).inc(pairs)

    def observe_cache(self, model: str, hits: int, misses: int) -> None:
        self.cache_hits.labels(model).inc(hits)
        self.cache_misses.labels(model).inc(misses)

    def track_queue(self, model: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model).set_function(lambda: float(depth()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
