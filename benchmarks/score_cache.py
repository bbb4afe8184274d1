"""The score cache's hit speed-up: workload A (1 query x 32 documents) through a RerankEngine with
`--score-cache`, cold (every pair a miss) then warm (every pair a hit), alternated over several rounds in
one process; the uncached engine is timed beside it. Prints the machine, each median and the ratio. Run:
    PYTHONPATH=src python benchmarks/score_cache.py --rounds 3 [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from transformers import AutoTokenizer

from rerankd.bench.machine import machine
from rerankd.bench.workloads import DEFAULT_MODEL_DIR, ensure_model, make_workloads
from rerankd.config import BatchConfig, ModelConfig, load_scorer
from rerankd.engine.engine import RerankEngine


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()
    model_dir = ensure_model(DEFAULT_MODEL_DIR)
    request = make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), False)["A"][0]
    query, docs = request["query"], list(request["documents"])
    scorer = load_scorer(ModelConfig(model=str(model_dir), device="cpu", dtype=args.dtype))
    print(f"machine: {machine()}")
    print(f"model: {scorer.info.name} {scorer.info.dtype}; workload A: 1 query x {len(docs)} documents")
    cold: list[float] = []
    warm: list[float] = []
    for r in range(args.rounds):
        engine = RerankEngine(scorer, BatchConfig(score_cache=10_000))
        await engine.start()
        try:
            t = time.perf_counter()
            first = (await engine.rerank_scores(query, docs)).scores
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            again = (await engine.rerank_scores(query, docs)).scores
            warm.append(time.perf_counter() - t)
            assert again == first, "a hit must equal the computed score exactly"
        finally:
            await engine.stop()
        print(f"round {r + 1}: cold {cold[-1]:.3f} s, warm {warm[-1]:.4f} s")
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"median cold {c:.3f} s ({len(docs) / c:.2f} pairs/s), warm {w:.4f} s: hit speed-up {c / w:.0f}x")


if __name__ == "__main__":
    asyncio.run(main())
