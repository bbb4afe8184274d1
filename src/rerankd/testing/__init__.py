"""Test and benchmark scaffolding, outside the runtime path (only `rerankd.bench` imports it in src/).

- `synthetic`: random-weight models with real architectures (tiny, or the full Qwen3-Reranker-0.6B).
- `reference`: one naive implementation of the official Qwen3-Reranker algorithm, for parity and bench.
- `fake`: `FakeScorer`, a torch-free Scorer for serving, client and UI tests that do not test scores.
- `servers`: a real `rerankd serve` process on a free port.

Importing this package imports none of them (torch loads only with `synthetic` and `reference`).
"""
