"""The fast yes/no scorer: prefix sharing is exact (1e-5 against scoring each pair alone and against the
reference), batches are planned under the token budget, and the bf16 / int8 paths drift within stated
bounds. Tiny models only; speed is measured by `rerankd bench`, never here."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from rerankd import Reranker
from rerankd.errors import InvalidRequest
from rerankd.models.base import EncodedPair, PlannedBatch, score_encoded, sigmoid
from rerankd.models.causal_lm import YesNoScorer
from rerankd.models.cpu import CpuFeatures
from rerankd.models.prefix import prefix_groups
from rerankd.testing.reference import ReferenceQwen3Reranker

TOL = 1e-5
# Drift of probabilities against fp32 on the tiny random model (its logits spread widely, which
# amplifies rounding; see benchmarks/README.md for the full-size figures).
BF16_DRIFT = 0.03
INT8_DRIFT = 0.1

WORDS = ["the", "capital", "city", "river", "gravity", "force", "北京", "首都", "python", "asyncio", "🙂"]
# Long queries make one group per query worth its prefix pass; the short ones share only the template.
QUERIES = [
    "which city is the capital? " * 6,
    "which city is the capital? " * 5 + "of France?",  # a long token prefix shared with the one above
    "gravity " * 20,
    "如何实现Python中的异步爬虫? " * 4,
    "",
    "river",
]


def mixed_pairs(seed: int = 3, per_query: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = [
        (q, " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 90))))
        for q in QUERIES
        for _ in range(per_query)
    ]
    pairs.append((QUERIES[0], pairs[0][1]))  # an exact duplicate: the whole sequence is shared
    rng.shuffle(pairs)
    return pairs


def singles(scorer: YesNoScorer, encoded: list[EncodedPair]) -> list[float]:
    return [scorer.forward(PlannedBatch.of([e]))[0] for e in encoded]


def whole(scorer: YesNoScorer, encoded: list[EncodedPair]) -> list[float]:
    """All pairs in one forward pass, sharing what their prefixes allow."""
    return scorer.forward(scorer.one_batch(encoded))


def max_diff(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def fp32(qwen3_dir: Path) -> Reranker:
    return Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32")


def test_prefix_groups_share_token_prefixes_only() -> None:
    seqs = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 6, 7], [1, 2, 3, 4, 5], [9, 8, 7], [1, 2, 9], [1, 2, 3]]
    groups = prefix_groups(seqs)
    assert sorted(i for _, members in groups for i in members) == list(range(len(seqs)))
    for g, members in groups:
        for i in members:
            assert g < len(seqs[i]), "every member keeps at least its last token"
            assert seqs[i][:g] == seqs[members[0]][:g]
    by_member = {i: g for g, members in groups for i in members}
    assert by_member[3] == 0  # shares nothing with anyone
    assert by_member[0] == by_member[1] == by_member[2] >= 2
    assert prefix_groups([]) == []
    assert prefix_groups([[5]]) == [(0, [0])]


def test_prefix_groups_split_when_queries_differ() -> None:
    template = list(range(100, 140))
    a = [template + [1] * 30 + [i, 7, 7] for i in range(6)]
    b = [template + [2] * 30 + [i, 7, 7] for i in range(6)]
    groups = prefix_groups(a + b)
    assert sorted(g for g, _ in groups) == [70, 70]  # one group per query, each sharing its query


def test_shared_prefix_matches_each_pair_alone(fp32: Reranker) -> None:
    scorer = fp32.scorer
    assert isinstance(scorer, YesNoScorer) and scorer.share_prefix
    encoded = [scorer.encode(q, d) for q, d in mixed_pairs()]
    batch = scorer.one_batch(encoded)
    assert len(batch.groups) >= 2, "the batch must exercise several prefixes"
    assert max_diff(scorer.forward(batch), singles(scorer, encoded)) <= TOL


def test_shared_prefix_matches_reference(fp32: Reranker, qwen3_dir: Path) -> None:
    reference = ReferenceQwen3Reranker(str(qwen3_dir))
    pairs = mixed_pairs(seed=11)
    encoded = [fp32.scorer.encode(q, d) for q, d in pairs]
    ours = [sigmoid(x) for x in score_encoded(fp32.scorer, encoded, max_batch_tokens=1500)]
    theirs = [reference.score(q, [d])[0] for q, d in pairs]
    assert max_diff(ours, theirs) <= TOL


def test_prefix_that_is_a_whole_pair(fp32: Reranker) -> None:
    # One sequence is a prefix of another: the shorter keeps its last token in the suffix pass.
    tok = fp32.scorer.tokenizer
    base = fp32.scorer.encode("capital", "Beijing").input_ids
    longer = base + tok.encode(" more text after the answer slot", add_special_tokens=False)
    encoded = [EncodedPair(base), EncodedPair(longer), EncodedPair(base)]
    assert max_diff(whole(fp32.scorer, encoded), singles(fp32.scorer, encoded)) <= TOL


def test_plan_covers_every_pair_under_budget(fp32: Reranker) -> None:
    scorer = fp32.scorer
    encoded = [scorer.encode(q, d) for q, d in mixed_pairs(per_query=12)]
    budget = 2000
    batches = scorer.plan(encoded, budget, 16)
    assert sorted(i for b in batches for i in b.indices) == list(range(len(encoded)))
    assert all(len(b) <= 16 for b in batches)
    assert any(b.groups for b in batches)
    for b in batches:
        assert b.pairs == tuple(encoded[i] for i in b.indices)
        shared = {i: g for g, m in b.groups for i in m}
        for g, members in b.groups:  # what forward will share really is shared, and leaves a last token
            assert all(b.pairs[i].input_ids[:g] == b.pairs[members[0]].input_ids[:g] for i in members)
            assert all(len(b.pairs[i]) > g for i in members)
        if len(b) > 1:
            width = max(len(p) - shared.get(k, 0) for k, p in enumerate(b.pairs))
            assert width * len(b) + sum(g for g, _ in b.groups) <= budget
    scores = score_encoded(scorer, encoded, max_batch_tokens=budget, max_batch_size=16)
    assert max_diff(scores, singles(scorer, encoded)) <= TOL


def test_sharing_off_gives_same_scores(qwen3_dir: Path, fp32: Reranker) -> None:
    pairs = mixed_pairs(seed=5)
    plain = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32")
    plain.scorer.share_prefix = False  # type: ignore[attr-defined]
    enc = [fp32.scorer.encode(q, d) for q, d in pairs]
    assert max_diff(whole(fp32.scorer, enc), whole(plain.scorer, enc)) <= TOL


def test_eager_attention_takes_the_additive_mask(qwen3_dir: Path, fp32: Reranker) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(qwen3_dir), dtype=torch.float32, attn_implementation="eager"
    ).eval()
    eager = YesNoScorer(model, fp32.scorer.tokenizer, info=fp32.info)
    assert eager.share_prefix
    enc = [fp32.scorer.encode(q, d) for q, d in mixed_pairs(seed=9, per_query=3)]
    assert max_diff(whole(eager, enc), whole(fp32.scorer, enc)) <= TOL


@pytest.mark.parametrize(("dtype", "bound"), [("bfloat16", BF16_DRIFT), ("int8", INT8_DRIFT)])
def test_low_precision_drift_is_bounded(qwen3_dir: Path, fp32: Reranker, dtype: str, bound: float) -> None:
    low = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype=dtype)
    assert low.info.dtype == dtype
    docs = [d for _, d in mixed_pairs(seed=2, per_query=4)]
    exact = fp32.score(QUERIES[0], docs)
    approx = low.score(QUERIES[0], docs)
    drift = max_diff(approx, exact)
    assert drift <= bound, f"{dtype}: max |difference| {drift:.3g} > {bound}"
    assert drift > 0  # it really ran in another precision
    # The ranking of clearly separated documents survives.
    top = sorted(range(len(docs)), key=lambda i: -exact[i])
    assert approx[top[0]] > approx[top[-1]]


def test_int8_replaces_backbone_linears_only(qwen3_dir: Path) -> None:
    low = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="int8")
    model = low.scorer.model  # type: ignore[attr-defined]
    assert not any(isinstance(m, torch.nn.Linear) for m in model.base_model.modules())
    assert low.scorer._head.dtype == torch.float32  # type: ignore[attr-defined]
    # Still accepted, and it says whether it pays on this CPU: where bf16 is native it steers to bf16.
    cpu = CpuFeatures.detect()
    steer = "use dtype bfloat16" in low.info.dtype_reason
    assert low.info.dtype == "int8" and steer == (cpu.amx or cpu.avx512_bf16), low.info.dtype_reason


def test_int8_is_cpu_only(qwen3_dir: Path) -> None:
    from rerankd.errors import ModelLoadError
    from rerankd.models.precision import resolve_dtype

    with pytest.raises(ModelLoadError, match="CPU only"):
        resolve_dtype("int8", torch.device("cuda"))
    with pytest.raises(ModelLoadError, match="int8"):
        resolve_dtype("int4", torch.device("cpu"))


def test_conversion_releases_nothing_still_in_use(qwen3_dir: Path, fp32: Reranker) -> None:
    # bf16 is converted tensor by tensor from the mapped fp32 file, whose pages are then dropped; an fp32
    # model loaded from the same file afterwards must still read the right weights.
    Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="bfloat16")
    again = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32")
    docs = ["Beijing is the capital.", "Gravity is a force.", ""]
    assert max_diff(again.score("capital", docs), fp32.score("capital", docs)) <= TOL


def count_grouping(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of every prefix grouping computed from now on."""
    from rerankd.models import prefix

    calls: list[int] = []
    real = prefix.prefix_groups
    monkeypatch.setattr(prefix, "prefix_groups", lambda seqs: calls.append(len(seqs)) or real(seqs))
    return calls


def test_prefix_grouping_runs_once_per_batch_in_plan_and_forward_reuses_it(
    fp32: Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rerankd.models.prefix import budget_tokens, forward_tokens

    calls = count_grouping(monkeypatch)
    scorer = fp32.scorer
    encoded = [scorer.encode(q, d) for q, d in mixed_pairs(seed=4)]
    batches = scorer.plan(encoded, 600, 8)
    # Once for the round (to cut it), then once per batch of two or more (to share within it).
    assert calls == [len(encoded)] + [len(b) for b in batches if len(b) > 1] and len(batches) > 2
    planned = len(calls)
    logits = [0.0] * len(encoded)
    for b in batches:
        for i, value in zip(b.indices, scorer.forward(b), strict=True):
            logits[i] = value
        # What a batch carries is never worse than grouping it on its own, unless that overran the budget.
        own = scorer.one_batch(b.pairs).groups
        assert forward_tokens(b.pairs, b.groups) <= forward_tokens(b.pairs, own) or budget_tokens(
            b.pairs, own
        ) > max(600, budget_tokens(b.pairs, b.groups))
    regrouped = sum(len(b) > 1 for b in batches)  # by one_batch above
    assert len(calls) == planned + regrouped, "forward must not group again"
    assert max_diff(logits, singles(scorer, encoded)) <= TOL
    # The library front groups as much as one plan does, however many batches it runs.
    docs = [d for _, d in mixed_pairs(seed=6)]
    calls.clear()
    fp32.score(QUERIES[0], docs)
    scored = len(calls)
    calls.clear()
    fp32.scorer.plan(fp32.encode(QUERIES[0], docs), fp32.batch.max_batch_tokens, fp32.batch.max_batch_size)
    assert scored == len(calls)


async def test_an_engine_round_groups_only_in_plan(qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rerankd.config import BatchConfig
    from rerankd.engine.engine import RerankEngine

    calls = count_grouping(monkeypatch)
    r = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32")
    engine = RerankEngine(r.scorer, BatchConfig(max_batch_tokens=600, max_batch_size=4))
    docs = [d for _, d in mixed_pairs(seed=8, per_query=3)]
    await engine.start()
    try:
        scored = await engine.rerank_scores(QUERIES[2], docs)
    finally:
        await engine.stop()
    served = list(calls)
    plan = r.scorer.plan(r.encode(QUERIES[2], docs), 600, 4)
    assert engine.batcher.batches_run == len(plan) > 1 and served == calls[len(served) :]
    assert max_diff(scored.scores, r.score(QUERIES[2], docs)) <= TOL


TRUNCATION_DOCS = [
    "The capital of China is Beijing, a city of some twenty million people.",
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "🚀🙂 emoji and text 🎉 mixed together 🙂",
    "short",
    "",
]


@pytest.mark.parametrize("n", [1, 3, 7, 20])
def test_encode_truncation_matches_the_old_engine_side_cut(fp32: Reranker, n: int) -> None:
    from rerankd.engine.documents import truncate_text  # the engine used to cut text with this

    scorer = fp32.scorer
    tok = scorer.tokenizer  # type: ignore[attr-defined]
    for doc in TRUNCATION_DOCS:
        old = scorer.encode("capital?", truncate_text(tok, doc, n), instruction="find it")
        new = scorer.encode("capital?", doc, instruction="find it", max_document_tokens=n)
        assert new == old and not new.truncated
        full = scorer.encode("capital?", doc, instruction="find it")
        if len(tok.encode(doc, add_special_tokens=False)) > n:  # it really cut something
            assert len(new) < len(full)
        else:
            assert new == full
    with pytest.raises(InvalidRequest, match="keeps nothing"):
        scorer.encode("capital?", TRUNCATION_DOCS[0], max_document_tokens=0)


def test_encode_chunks_match_the_old_engine_side_chunks(fp32: Reranker) -> None:
    from rerankd.engine.documents import chunk_text

    scorer = fp32.scorer
    doc = "Rivers, mountains and deserts cover much of the country. " * 6 + "北京是首都。🙂"
    parts = chunk_text(scorer.tokenizer, doc, 12, 3, 5)  # type: ignore[attr-defined]
    chunks = scorer.encode_chunks("q", doc, chunk_tokens=12, overlap_tokens=3, max_chunks=5)
    assert len(chunks) == 5 and chunks == [scorer.encode("q", p) for p in parts]
    assert scorer.encode_chunks("q", "short", chunk_tokens=12, overlap_tokens=3, max_chunks=5) == [
        scorer.encode("q", "short")
    ]
    assert scorer.room("q") == scorer.info.max_length - len(scorer.encode("q", ""))


def test_cross_encoder_truncation_and_chunks_behind_encode(cross_encoder_dir: Path) -> None:
    from rerankd.engine.documents import chunk_text, truncate_text

    ce = Reranker.from_pretrained(str(cross_encoder_dir), device="cpu", dtype="float32").scorer
    tok = ce.tokenizer  # type: ignore[attr-defined]
    doc = "gravity is a force that attracts two bodies towards each other " * 3
    assert ce.encode("q", doc, max_document_tokens=4) == ce.encode("q", truncate_text(tok, doc, 4))
    chunks = ce.encode_chunks("q", doc, chunk_tokens=6, overlap_tokens=2, max_chunks=3)
    assert chunks == [ce.encode("q", p) for p in chunk_text(tok, doc, 6, 2, 3)] and len(chunks) == 3
    batches = ce.plan(chunks, 10**6, 8)
    assert len(batches) == 1 and not batches[0].groups
    assert len(score_encoded(ce, chunks, max_batch_tokens=10**6)) == 3
