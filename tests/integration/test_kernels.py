"""The fused eager kernels (rerankd.models.kernels) score as transformers' eager path does, on real tiny
Qwen3, Qwen2 (mxbai-v2) and Gemma / Gemma 2 (bge-gemma) models; RERANKD_FUSED=off loads that eager path
untouched; the pieces equal transformers' functions on random tensors; the modeling modules themselves
are never patched (the reference in the parity tests keeps transformers' RoPE). The chunked causal
attention (rerankd.models.attention) runs with small chunks here, so the tiny models' short sequences
take it: against transformers' SDPA on random tensors (masks as transformers and the prefix-sharing
scorer build them) and end to end, with and without prefix sharing, with padding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.gemma2 import modeling_gemma2
from transformers.models.qwen3 import modeling_qwen3

from rerankd.models import attention, kernels
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


class _Heads(torch.nn.Module):
    """What the attention interface reads from its module: GQA's group count and causality."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def _small_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int = 4) -> list[int]:
    """Chunks of `chunk` query rows from 2 keys up; returns a list that records each call's chunk count."""
    monkeypatch.setattr(attention, "CHUNK", chunk)
    monkeypatch.setattr(attention, "MIN_KEYS", 2)
    calls: list[int] = []
    real = attention._chunks

    def spy(*args: Any) -> Any:
        got = real(*args)
        calls.append(len(got))
        return got

    monkeypatch.setattr(attention, "_chunks", spy)
    return calls


def _masks(b: int, q: int, prefix: list[int], pw: int, lengths: list[int]) -> torch.Tensor:
    """The scorer's suffix-pass mask: row i sees its first prefix[i] of pw prefix keys, then its own
    tokens causally up to lengths[i] (right padding)."""
    prefix_ok = torch.arange(pw)[None, :] < torch.tensor(prefix)[:, None]
    own = (
        torch.ones(q, q, dtype=torch.bool).tril()[None]
        & (torch.arange(q)[None, :] < torch.tensor(lengths)[:, None])[:, None, :]
    )
    return torch.cat([prefix_ok[:, None, :].expand(-1, q, -1), own], dim=2)[:, None]


@pytest.mark.parametrize("float_masks", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_attention_equals_sdpa(
    dtype: torch.dtype, float_masks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _small_chunks(monkeypatch, chunk=5)
    if not float_masks:  # a pass too big to keep its float masks: boolean slices, converted per call
        monkeypatch.setattr(attention, "MAX_FLOAT_MASK", 0)
    torch.manual_seed(0)
    b, heads, kv_heads, d, q_len = 3, 4, 2, 16, 23
    module = _Heads(heads // kv_heads)
    lengths = [23, 17, 9]
    query = torch.randn(b, q_len, heads, d).to(dtype).transpose(1, 2)  # as the attention module makes them
    cases: dict[str, tuple[int, torch.Tensor | None]] = {
        "causal, no mask": (0, None),
        "right padding": (0, _masks(b, q_len, [0] * b, 0, lengths)),
        "one prefix": (11, _masks(b, q_len, [11] * b, 11, lengths)),
        "prefixes of two groups, one row unshared": (11, _masks(b, q_len, [11, 6, 0], 11, lengths)),
    }
    tol = 1e-6 if dtype == torch.float32 else 2e-2
    for name, (pw, mask) in cases.items():
        key = torch.randn(b, pw + q_len, kv_heads, d).to(dtype).transpose(1, 2)
        value = torch.randn(b, pw + q_len, kv_heads, d).to(dtype).transpose(1, 2)
        ref, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=d**-0.5)
        ours, _ = attention.sdpa_attention(module, query, key, value, mask, scaling=d**-0.5)
        assert calls[-1] == 5, name  # 23 rows in chunks of 5: the chunked path ran
        valid = (
            torch.arange(q_len)[None, :] < torch.tensor(lengths if mask is not None else [q_len] * b)[:, None]
        )
        diff = (ours.float() - ref.float())[valid].abs().max().item()
        assert diff <= tol * max(1.0, ref.float().abs().max().item()), (name, diff)
        if mask is not None:  # the mask is read once: a second layer's call reuses its chunks
            cached = getattr(mask, attention._CACHE_ATTR)
            again, _ = attention.sdpa_attention(module, query, key, value, mask, scaling=d**-0.5)
            assert getattr(mask, attention._CACHE_ATTR) is cached and torch.equal(again, ours)
            # The early chunks read only the keys they can see.
            assert [end for _, _, end, _ in cached[1]][:2] == [pw + 5, pw + 10], name
            assert all((m.dtype == torch.bool) != float_masks for *_, m in cached[1])


def test_chunked_attention_hands_the_rest_to_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _small_chunks(monkeypatch)
    torch.manual_seed(0)
    module = _Heads(2)
    query = torch.randn(2, 4, 9, 8)
    key, value = torch.randn(2, 2, 9, 8), torch.randn(2, 2, 9, 8)
    float_mask = torch.zeros(2, 1, 9, 9).masked_fill_(
        torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf")
    )
    for kwargs in (
        {"attention_mask": float_mask},  # an additive mask: transformers' path
        {"attention_mask": None, "sliding_window": 4},  # a window transformers did not put in a mask
        {"attention_mask": None, "dropout": 0.1},
    ):
        torch.manual_seed(1)
        ref, _ = sdpa_attention_forward(module, query, key, value, **kwargs)  # type: ignore[arg-type]
        torch.manual_seed(1)
        ours, _ = attention.sdpa_attention(module, query, key, value, **kwargs)  # type: ignore[arg-type]
        assert torch.equal(ours, ref), kwargs
    assert calls == []


@pytest.mark.parametrize("share_prefix", [True, False])
def test_chunked_attention_scores(
    qwen3_dir: Path,
    tmp_path: Path,
    tokenizer_dir: Path | None,
    share_prefix: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fused (chunked attention on) against transformers' eager path, fp32 within 1e-5 and bf16 within
    bf16's rounding, on Qwen3 and Qwen2 (mxbai-v2), through the shared-prefix pass and the plain padded one."""
    dirs = [qwen3_dir]
    if tokenizer_dir is not None:
        dirs.append(build_qwen2_reranker(tmp_path / "qwen2", tokenizer_dir=tokenizer_dir))
    docs = [*DOCS, "A longer document, " * 6 + "about Paris and its many bridges over the Seine."]
    for model_dir in dirs:
        monkeypatch.setenv("RERANKD_FUSED", "off")
        eager = {dt: load_scorer(str(model_dir), device="cpu", dtype=dt) for dt in ("float32", "bfloat16")}
        monkeypatch.setenv("RERANKD_FUSED", "on")
        fused = {dt: load_scorer(str(model_dir), device="cpu", dtype=dt) for dt in ("float32", "bfloat16")}
        calls = _small_chunks(monkeypatch)
        scores: dict[tuple[str, str], list[float]] = {}
        for kind, scorers in (("eager", eager), ("fused", fused)):
            for dt, scorer in scorers.items():
                scorer.share_prefix = share_prefix and scorer.share_prefix  # type: ignore[attr-defined]
                enc = [scorer.encode(QUERY, d) for d in docs]
                assert len({len(e) for e in enc}) > 1  # different lengths: padding in every pass
                scores[kind, dt] = score_encoded(scorer, enc, max_batch_tokens=4096)
        assert calls and max(calls) > 2, model_dir  # fused passes ran in several chunks; eager never did
        exact = scores["eager", "float32"]
        assert max(exact) - min(exact) > 0.05
        fp32 = max(abs(a - b) for a, b in zip(scores["fused", "float32"], exact, strict=True))
        assert fp32 <= 1e-5, (model_dir.name, fp32)
        bf16 = max(
            abs(a - b) for a, b in zip(scores["fused", "bfloat16"], scores["eager", "bfloat16"], strict=True)
        )
        assert bf16 <= 0.05, (model_dir.name, bf16)
