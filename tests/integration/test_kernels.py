"""The fused eager kernels (rerankd.models.kernels) score as transformers' eager path does, on real tiny
Qwen3, Qwen2 (mxbai-v2) and Gemma / Gemma 2 (bge-gemma) models; RERANKD_FUSED=off loads that eager path
untouched; the pieces equal transformers' functions on random tensors; the modeling modules themselves
are never patched (the reference in the parity tests keeps transformers' RoPE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.models.gemma2 import modeling_gemma2
from transformers.models.qwen3 import modeling_qwen3

from rerankd.models import kernels
from rerankd.models.base import score_encoded
from rerankd.models.loading import load_scorer
from rerankd.testing.synthetic import build_gemma_reranker, build_qwen2_reranker

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Bananas are yellow and rich in potassium.",
    "The Eiffel tower stands in Paris, on the Champ de Mars.",
    "Berlin is the capital of Germany.",
    "Une phrase en français sur la ville de Paris.",
]


def _scores(scorer: Any) -> list[float]:
    # Through plan and forward with prefix sharing on: the shared path and its stand-in cache.
    return score_encoded(scorer, [scorer.encode(QUERY, d) for d in DOCS], max_batch_tokens=4096)


def _patched(model: torch.nn.Module) -> list[str]:
    return sorted({type(m).__name__ for m in model.modules() if "forward" in vars(m)})


def _compare(model_dir: Path, monkeypatch: pytest.MonkeyPatch, kinds: set[str]) -> None:
    monkeypatch.setenv("RERANKD_FUSED", "off")
    eager = {dt: load_scorer(str(model_dir), device="cpu", dtype=dt) for dt in ("float32", "bfloat16")}
    assert all(_patched(s.model) == [] for s in eager.values())  # off: transformers' forwards
    monkeypatch.delenv("RERANKD_FUSED")
    fused = {dt: load_scorer(str(model_dir), device="cpu", dtype=dt) for dt in ("float32", "bfloat16")}
    patched = _patched(fused["float32"].model)
    assert {k for k in kinds if any(p.endswith(k) for p in patched)} == kinds, patched
    exact = _scores(eager["float32"])
    assert max(exact) - min(exact) > 0.05  # the documents score differently: a wrong kernel would show
    for dt in ("float32", "bfloat16"):
        ours, theirs = _scores(fused[dt]), _scores(eager[dt])
        assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) <= 1e-6, dt
    # bf16 stays near fp32 (logit differences of a random tiny model: its drift, not the kernels').
    bf16 = _scores(fused["bfloat16"])
    assert max(abs(a - b) for a, b in zip(bf16, exact, strict=True)) < 0.1


def test_qwen3_fused_equals_eager(qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _compare(qwen3_dir, monkeypatch, {"RMSNorm", "MLP", "Attention", "DecoderLayer"})


def test_qwen2_fused_equals_eager(
    tmp_path: Path, tokenizer_dir: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tokenizer_dir is None:
        pytest.skip("mxbai-rerank-v2 needs the real Qwen tokenizer")
    model_dir = build_qwen2_reranker(tmp_path / "qwen2", tokenizer_dir=tokenizer_dir)
    _compare(model_dir, monkeypatch, {"RMSNorm", "MLP", "Attention", "DecoderLayer"})


@pytest.mark.parametrize("gemma2", [False, True])
def test_gemma_fused_equals_eager(tmp_path: Path, gemma2: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = build_gemma_reranker(tmp_path / "gemma", gemma2=gemma2)
    # Gemma's decoder layers have other norms around attention and MLP: those layers stay unpatched.
    _compare(model_dir, monkeypatch, {"RMSNorm", "MLP", "Attention"})


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pieces_equal_transformers(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x = (torch.randn(3, 7, 64) * 4).to(dtype)
    w = (torch.rand(64) + 0.5).to(dtype)
    norm = modeling_qwen3.Qwen3RMSNorm(64, eps=1e-6).to(dtype)
    gnorm = modeling_gemma2.Gemma2RMSNorm(64, eps=1e-6).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(w)
        gnorm.weight.copy_(w - 1)
    before = x.clone()
    assert torch.equal(kernels.rms_norm(x, norm.weight, 1e-6), norm(x))
    assert torch.equal(kernels.rms_norm_offset(x, gnorm.weight, 1e-6), gnorm(x))
    assert torch.equal(x, before)  # the input (a residual) is never normalised in place
    q, k = torch.randn(2, 4, 7, 32).to(dtype), torch.randn(2, 2, 7, 32).to(dtype)
    angle = torch.rand(2, 7, 16) * 6
    cos, sin = torch.cat([angle.cos()] * 2, -1).to(dtype), torch.cat([angle.sin()] * 2, -1).to(dtype)
    ours, theirs = (
        kernels.apply_rotary_pos_emb(q, k, cos, sin),
        modeling_qwen3.apply_rotary_pos_emb(q, k, cos, sin),
    )
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_revert_and_modules_untouched(qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rope = modeling_qwen3.apply_rotary_pos_emb
    monkeypatch.setenv("RERANKD_FUSED", "off")
    scorer: Any = load_scorer(str(qwen3_dir), device="cpu", dtype="float32")
    eager = _scores(scorer)
    result = kernels.apply_kernels(scorer.model, "on")
    assert result.applied and result.patched["rmsnorm"] > 0 and result.patched["rope"] > 0
    assert modeling_qwen3.apply_rotary_pos_emb is rope  # per instance, never module-wide
    assert kernels.apply_kernels(scorer.model, "on").patched == {}  # idempotent: nothing patched twice
    fused = _scores(scorer)
    result.revert()
    assert _patched(scorer.model) == [] and _scores(scorer) == eager
    assert max(abs(a - b) for a, b in zip(fused, eager, strict=True)) <= 1e-6
    assert not kernels.apply_kernels(scorer.model, "off").applied
    with pytest.raises(ValueError, match="auto, on or off"):
        kernels.apply_kernels(scorer.model, "fast")
