"""Batch invariance: does a pair's score depend on what else is in its batch?

Each pair is scored alone (a one-document request: `plan([pair])` then `forward`), then inside batches
of 2, 8, 32 and 64 pairs of mixed queries and lengths, two ways: as the engine batches them
(`plan(batch, max_batch_tokens, max_batch_size)` then `forward` of every planned batch, shared prefixes
included) and as one forward pass (`one_batch`). Printed per dtype and mode: max |delta| of the
log-odds and of the probability against alone, and how many pairs differ at all (bitwise). A last
line times both modes side by side (pairs/s, the same batches, interleaved rounds).

    PYTHONPATH=src python benchmarks/batch_invariance.py                 # mid-size random Qwen3
    PYTHONPATH=src python benchmarks/batch_invariance.py --full          # the 0.6B architecture (slow)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

from rerankd.models.base import EncodedPair, PlannedBatch, sigmoid
from rerankd.models.causal_lm import YesNoScorer
from rerankd.models.loading import load_scorer
from rerankd.testing.synthetic import MID_QWEN3, build_qwen3_reranker, default_tokenizer_dir

WORDS = [
    "the",
    "capital",
    "city",
    "river",
    "gravity",
    "force",
    "python",
    "asyncio",
    "crawler",
    "data",
    "model",
    "query",
    "document",
    "search",
    "relevant",
    "passage",
    "answer",
    "Beijing",
    "Paris",
    "France",
    "China",
    "北京",
    "首都",
    "数据",
    "异步",
    "café",
    "naïve",
    "🙂",
    "1984",
    "v2.0",
]
QUERIES = [
    "what is the capital of China?",
    "what is the capital of France and why?",  # shares its first tokens with the one above
    "explain gravity",
    "如何实现Python中的异步爬虫?",
    "river " * 30,
    "",
    "python asyncio crawler with retries and backoff " * 3,
    "data",
]
SIZES = (2, 8, 32, 64)


def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (rng.choice(QUERIES), " ".join(rng.choice(WORDS) for _ in range(rng.choice([3, 20, 60, 150, 280]))))
        for _ in range(n)
    ]


def alone(scorer: Any, e: EncodedPair) -> float:
    (batch,) = scorer.plan([e], 1 << 20, 64)
    return float(scorer.forward(batch)[0])


def engine(scorer: Any, chunk: list[EncodedPair], max_batch_tokens: int) -> list[float]:
    out = [0.0] * len(chunk)
    for batch in scorer.plan(chunk, max_batch_tokens, 64):
        for i, v in zip(batch.indices, scorer.forward(batch), strict=True):
            out[i] = v
    return out


def one_pass(scorer: Any, chunk: list[EncodedPair]) -> list[float]:
    if hasattr(scorer, "one_batch"):
        return list(scorer.forward(scorer.one_batch(chunk)))
    return list(scorer.forward(PlannedBatch.of(chunk)))


def measure(scorer: Any, encoded: list[EncodedPair], seed: int, max_batch_tokens: int) -> dict[str, Any]:
    ref = [alone(scorer, e) for e in encoded]
    rng = random.Random(seed)
    rows: dict[str, Any] = {}
    for size in SIZES:
        for how in ("engine", "one_pass"):
            worst_logit = worst_prob = 0.0
            differ = 0
            order = list(range(len(encoded)))
            rng.shuffle(order)
            for c in range(0, len(order), size):
                idx = order[c : c + size]
                if len(idx) < 2:
                    continue
                chunk = [encoded[i] for i in idx]
                got = engine(scorer, chunk, max_batch_tokens) if how == "engine" else one_pass(scorer, chunk)
                for i, v in zip(idx, got, strict=True):
                    d = abs(v - ref[i])
                    differ += d != 0.0
                    worst_logit = max(worst_logit, d)
                    worst_prob = max(worst_prob, abs(sigmoid(v) - sigmoid(ref[i])))
            rows[f"{how}@{size}"] = {"logit": worst_logit, "prob": worst_prob, "differ": differ}
    return rows


def timed(scorer: Any, encoded: list[EncodedPair], max_batch_tokens: int) -> float:
    t = time.perf_counter()
    for c in range(0, len(encoded), 32):
        engine(scorer, encoded[c : c + 32], max_batch_tokens)
    return len(encoded) / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a Qwen3 reranker directory (default: build a random one)")
    ap.add_argument("--full", action="store_true", help="build the full 0.6B architecture, not the mid one")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--modes", default="default,invariant", help="default and/or invariant (if available)")
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-batch-tokens", type=int, default=8192)
    ap.add_argument("--time-rounds", type=int, default=2, help="interleaved timing rounds (0: none)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--time-only", action="store_true", help="skip the invariance figures; time the modes")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        name = "qwen3-0.6b-random" if args.full else "qwen3-mid-random"
        model = Path(tmp.name) / name
        print(f"building {name} ...", file=sys.stderr)
        build_qwen3_reranker(
            model,
            tokenizer_dir=default_tokenizer_dir(),
            full_size=args.full,
            sizes=None if args.full else MID_QWEN3,
        )
    pairs = make_pairs(args.pairs, args.seed)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.pairs} pairs, "
        f"{len(set(q for q, _ in pairs))} queries; model {model.name}"
    )
    results: dict[str, Any] = {}
    scorers: dict[str, Any] = {}
    for dtype in args.dtypes.split(","):
        for mode in args.modes.split(","):
            kwargs = {"batch_invariant": mode == "invariant"} if mode != "default" else {}
            try:
                scorer = load_scorer(str(model), device=args.device, dtype=dtype, max_length=8192, **kwargs)
            except TypeError:
                print(f"{dtype} {mode}: not available in this version", file=sys.stderr)
                continue
            assert isinstance(scorer, YesNoScorer)
            encoded = [scorer.encode(q, d) for q, d in pairs]
            scorers[f"{dtype}/{mode}"] = (scorer, encoded)
            if args.time_only:
                continue
            rows = measure(scorer, encoded, args.seed, args.max_batch_tokens)
            results[f"{dtype}/{mode}"] = rows
            print(f"\n{dtype} {mode}: tokens per pair {min(map(len, encoded))}-{max(map(len, encoded))}")
            print(f"  {'batch':<13} {'max|dlogit|':>12} {'max|dprob|':>12} {'pairs differ':>13}")
            for k, r in rows.items():
                print(f"  {k:<13} {r['logit']:>12.3e} {r['prob']:>12.3e} {r['differ']:>13}")
    if args.time_rounds:
        rates: dict[str, list[float]] = {k: [] for k in scorers}
        for _ in range(args.time_rounds):
            for k, (scorer, encoded) in scorers.items():
                rates[k].append(timed(scorer, encoded, args.max_batch_tokens))
        print("\npairs/s (batches of 32 through plan + forward, best of interleaved rounds):")
        for k, r in rates.items():
            print(f"  {k:<22} {max(r):8.1f}")
            results.setdefault("pairs_per_s", {})[k] = max(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
