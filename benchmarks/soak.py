"""Soak: a real `rerankd serve` under mixed traffic at concurrency 8 for N minutes (not in `make test`).

Samples the server's RSS every few seconds and reports the RSS slope after a warm-up (least squares,
MiB/min; the target is <= 0.1), p50/p99 latency in the first and last minute, and error counts.

    PYTHONPATH=src python benchmarks/soak.py --minutes 3            # tiny random model, built once
    PYTHONPATH=src python benchmarks/soak.py --model DIR --minutes 10 --json soak.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from rerankd.testing.servers import rerankd_server
from rerankd.testing.synthetic import build_qwen3_reranker, default_tokenizer_dir

MODELS = Path(__file__).resolve().parent / ".models"
WORDS = [
    "capital",
    "city",
    "river",
    "gravity",
    "force",
    "pandas",
    "library",
    "data",
    "Beijing",
    "China",
    "mountain",
    "ocean",
]


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def mixed_request(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One of the dialects and shapes real clients send, with varying sizes (varying tensor shapes)."""
    docs = [text(rng, rng.randint(5, 120)) for _ in range(rng.randint(1, 24))]
    query = text(rng, rng.randint(2, 12))
    kind = rng.randrange(5)
    if kind == 0:
        return "/v1/rerank", {"query": query, "documents": docs, "top_n": 3}
    if kind == 1:
        objs = [{"text": d, "id": i} for i, d in enumerate(docs)]
        return "/v2/rerank", {"query": query, "documents": objs, "return_documents": True}
    if kind == 2:
        return "/rerank", {"query": query, "texts": docs, "return_text": True}
    if kind == 3:
        return "/score", {"text_1": query, "text_2": docs}
    long_docs = [text(rng, rng.randint(200, 900)) for _ in range(rng.randint(1, 4))]
    return "/v1/rerank", {"query": query, "documents": long_docs, "max_chunks_per_doc": 4}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) in MiB per minute."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "n": 0}
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1), "n": len(latencies)}


def soak(url: str, pid: int, *, seconds: float, warmup: float, concurrency: int) -> dict[str, Any]:
    start = time.monotonic()
    stop = threading.Event()
    lock = threading.Lock()
    done: list[tuple[float, float]] = []  # (time since start, latency)
    statuses: Counter[str] = Counter()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                path, body = mixed_request(rng)
                t0 = time.monotonic()
                try:
                    status = str(client.post(path, json=body).status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
                t1 = time.monotonic()
                with lock:
                    statuses[status] += 1
                    if status == "200":
                        done.append((t1 - start, t1 - t0))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    samples: list[tuple[float, float]] = []
    while (now := time.monotonic() - start) < seconds:
        samples.append((now, rss_mib(pid)))
        time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(60)
    after = [p for p in samples if p[0] >= warmup]
    window = min(60.0, (seconds - warmup) / 2)
    first: Callable[[float], bool] = lambda t: warmup <= t < warmup + window  # noqa: E731
    last: Callable[[float], bool] = lambda t: t >= seconds - window  # noqa: E731
    return {
        "seconds": seconds,
        "warmup_s": warmup,
        "concurrency": concurrency,
        "requests": sum(statuses.values()),
        "statuses": dict(statuses),
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "rss_start_mib": round(after[0][1], 1) if after else None,
        "rss_end_mib": round(after[-1][1], 1) if after else None,
        "rss_slope_mib_per_min": round(slope_per_minute(after), 3),
        "latency_start": percentiles([lat for t, lat in done if first(t)]),
        "latency_end": percentiles([lat for t, lat in done if last(t)]),
        "rss_samples": [(round(t, 1), round(m, 1)) for t, m in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--model", type=Path, help="a model directory (default: a tiny random Qwen3 reranker)"
    )
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the RSS slope")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    model = args.model
    if model is None:
        model = MODELS / "tiny-qwen3-reranker"
        if not (model / "config.json").exists():
            build_qwen3_reranker(model, tokenizer_dir=default_tokenizer_dir())
    with (
        tempfile.TemporaryDirectory() as logs,
        rerankd_server(model, "--no-ui", log_dir=Path(logs)) as server,
    ):
        figures = soak(
            server.url,
            server.process.pid,
            seconds=args.minutes * 60,
            warmup=min(args.warmup, args.minutes * 30),
            concurrency=args.concurrency,
        )
    figures["model"] = str(model)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
