"""The compiled path (rerankd.models.fused) scores like eager within bf16 tolerance, really runs
compiled graphs, and falls back to eager when compiling fails. Tiny model: one compile, well under 60 s."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rerankd.models import fused
from rerankd.models.base import PlannedBatch
from rerankd.models.loading import load_scorer

DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "The Eiffel tower is in Paris."]


def _scores(scorer, query: str = "What is the capital of France?") -> list[float]:  # type: ignore[no-untyped-def]
    return scorer.forward(PlannedBatch.of([scorer.encode(query, d) for d in DOCS]))


def test_compiled_scores_equal_eager(qwen3_dir: Path) -> None:
    scorer = load_scorer(str(qwen3_dir), device="cpu", dtype="bfloat16")
    eager = _scores(scorer)
    exact = _scores(load_scorer(str(qwen3_dir), device="cpu", dtype="float32"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result = fused.maybe_compile(scorer.model, "auto")
    try:
        assert result.compiled and result.modules > 0 and result.seconds > 0, result.reason
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # graphs were built
        compiled = _scores(scorer)
        single = scorer.forward(
            PlannedBatch.of([scorer.encode("capital of France?", DOCS[0])])
        )  # batch 1, no prefix
        # Logit differences (yes - no): bf16 eager vs compiled differ by rounding order only.
        assert max(abs(a - b) for a, b in zip(compiled, eager, strict=True)) < 0.05
        assert max(abs(a - b) for a, b in zip(compiled, exact, strict=True)) < 0.1
        assert compiled != [compiled[0]] * len(compiled) and len(single) == 1
    finally:
        result.revert()
    assert "forward" not in vars(scorer.model.base_model.norm)  # eager forwards restored
    assert _scores(scorer) == eager


def test_auto_leaves_fp32_eager_and_failures_fall_back(
    qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = load_scorer(str(qwen3_dir), device="cpu", dtype="float32")
    assert not fused.maybe_compile(scorer.model, "auto").compiled  # fp32 is GEMM-bound: eager
    before = _scores(scorer)

    def broken(model: torch.nn.Module) -> None:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(fused, "_warm_up", broken)
    result = fused.maybe_compile(scorer.model, "on")
    assert not result.compiled and "no C++ compiler" in result.reason
    assert _scores(scorer) == before  # eager again, untouched
    with pytest.raises(ValueError):
        fused.maybe_compile(scorer.model, "sometimes")
