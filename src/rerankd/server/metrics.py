"""Prometheus metrics, on a registry of the app's own (several apps can live in one process)."""

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
        self.queue_depth = Gauge("rerankd_queue_depth", "Pairs waiting or being scored", registry=r)
        self.batch_pairs = Histogram(
            "rerankd_batch_pairs", "Pairs per model batch", buckets=PAIR_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "rerankd_batch_tokens", "Padded tokens per model batch", buckets=TOKEN_BUCKETS, registry=r
        )
        self.pairs_scored = Counter("rerankd_pairs_scored", "Pairs scored by the model", registry=r)
        self.prompt_tokens = Counter("rerankd_prompt_tokens", "Tokens read by the model", registry=r)
        self.cache_hits = Counter(
            "rerankd_score_cache_hits", "Pairs answered from the score cache (--score-cache)", registry=r
        )
        self.cache_misses = Counter(
            "rerankd_score_cache_misses", "Pairs the score cache did not hold (--score-cache)", registry=r
        )

    def observe_batch(self, pairs: int, tokens: int) -> None:
        self.batch_pairs.observe(pairs)
        self.batch_tokens.observe(tokens)
        self.pairs_scored.inc(pairs)

    def observe_cache(self, hits: int, misses: int) -> None:
        self.cache_hits.inc(hits)
        self.cache_misses.inc(misses)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
