"""What `return_spans` costs: the tokens the model reads for one rerank request of 8 documents of about
280 tokens, without spans, with spans, and with spans for the top 3, through the library over the tiny
test model (real Qwen3 tokenizer). Token counts are the model's work and machine-independent; the
medians of --rounds timings are printed beside them, side by side in one run. Run:
    PYTHONPATH=src python benchmarks/spans_cost.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rerankd import Reranker
from rerankd.bench.machine import machine
from rerankd.testing.synthetic import build_qwen3_reranker, default_tokenizer_dir

QUERY = "What is the capital of France?"
PARAGRAPH = "The river runs through the old town, past the market and the cathedral, to the sea. "


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    model = build_qwen3_reranker(Path(tempfile.mkdtemp()) / "tiny", tokenizer_dir=default_tokenizer_dir())
    reranker = Reranker.from_pretrained(str(model), device="cpu", dtype="float32")
    docs = [PARAGRAPH * 14 + f"Document {i} says Paris is the capital of France." for i in range(8)]
    cases = {
        "plain": {},
        "return_spans": {"return_spans": True},
        "return_spans, top_n=3": {"return_spans": True, "top_n": 3},
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    tokens: dict[str, int] = {}
    for _ in range(args.rounds):  # interleaved, so a change of load hits every case alike
        for name, kw in cases.items():
            start = time.perf_counter()
            result = reranker.rerank(QUERY, docs, **kw)  # type: ignore[arg-type]
            times[name].append(time.perf_counter() - start)
            tokens[name] = result.usage.prompt_tokens
    print(machine())
    for name in cases:
        ratio = tokens[name] / tokens["plain"]
        median = statistics.median(times[name])
        print(f"{name:24s} tokens {tokens[name]:6d} ({ratio:.1f}x)  median {median * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
