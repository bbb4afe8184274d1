"""Ratios that survive a noisy shared machine: several variants loaded in ONE process, scoring the same
workload in turn (eager bf16, compiled bf16, int8, ...), round after round, so a burst of foreign load
hits every variant alike. Prints each variant's per-round pairs/s, the median ratio to the first variant
per round, and the spread of that ratio. Run:
    PYTHONPATH=src python benchmarks/interleaved.py --variants bfloat16,bfloat16+compile,int8 --rounds 4
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer
from transformers.models.qwen3 import modeling_qwen3

from rerankd.bench.workloads import DEFAULT_MODEL_DIR, ensure_model, make_workloads
from rerankd.config import BatchConfig, ModelConfig
from rerankd.models.fused import maybe_compile
from rerankd.reranker import load_reranker


def interleave(
    runs: dict[str, Callable[[], list[float]]], rounds: int, pairs: int, clock: Callable[[], float]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each run once per round, in turn, `rounds` times: its pairs/s per round, and its last scores."""
    rates: dict[str, list[float]] = {v: [] for v in runs}
    scores: dict[str, list[float]] = {}
    for _ in range(rounds):
        for v, run in runs.items():
            t = clock()
            scores[v] = run()
            rates[v].append(pairs / (clock() - t))
    return rates, scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="bfloat16,bfloat16+compile,int8")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: every core)")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by the process's CPU time (a shared machine's other jobs not counted)",
    )
    args = ap.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    model_dir = ensure_model(args.model)
    request = make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), args.quick)["A"][0]
    eager_rope = modeling_qwen3.apply_rotary_pos_emb
    runs: dict[str, Callable[[], list[float]]] = {}
    for v in args.variants.split(","):
        dtype = "bfloat16" if v == "bfloat16+compile" else v
        rr = load_reranker(ModelConfig(model=str(model_dir), device="cpu", dtype=dtype), BatchConfig())
        rope: Any = eager_rope
        if v == "bfloat16+compile":
            res = maybe_compile(rr.scorer.model, "on")  # type: ignore[attr-defined]
            print(f"{v}: {res.reason}, warm-up {res.seconds:.1f} s")
            rope = modeling_qwen3.apply_rotary_pos_emb
            modeling_qwen3.apply_rotary_pos_emb = eager_rope

        def run(rr: Any = rr, rope: Any = rope) -> list[float]:
            modeling_qwen3.apply_rotary_pos_emb = rope  # RoPE's compiled copy is module-wide
            return rr.score(request["query"], request["documents"])

        run()  # warm-up
        runs[v] = run
    if args.threads:
        torch.set_num_threads(args.threads)  # after the loads: the loader sets every core
    pairs = len(request["documents"])
    rates, scores = interleave(runs, args.rounds, pairs, clock)
    base = next(iter(runs))
    unit = "CPU time" if args.cpu_time else "wall time"
    print(f"workload A ({pairs} pairs), {args.rounds} rounds, interleaved in one process, {unit}")
    for v, rs in rates.items():
        ratio = [r / b for r, b in zip(rs, rates[base], strict=True)]
        diff = max(abs(a - b) for a, b in zip(scores[v], scores[base], strict=True))
        print(
            f"  {v:18s} pairs/s {' '.join(f'{r:.2f}' for r in rs)}  median {statistics.median(rs):.2f}  "
            f"x {base}: median {statistics.median(ratio):.2f} (range {min(ratio):.2f}-{max(ratio):.2f})"
            f"  max |score diff| vs {base} {diff:.1e}"
        )


if __name__ == "__main__":
    main()
