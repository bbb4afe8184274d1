"""The fast yes/no scorer: prefix sharing is exact (1e-5 against scoring each pair alone and against the
reference), batches are planned under the token budget, and the bf16 / int8 paths drift within stated
bounds. Tiny models only; speed is measured by `rerankd bench`, never here."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from rerankd import Reranker
from rerankd.models.base import EncodedPair, score_encoded, sigmoid
from rerankd.models.causal_lm import YesNoScorer, prefix_groups
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
    return [scorer.forward([e])[0] for e in encoded]


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
    groups = prefix_groups([e.input_ids for e in encoded])
    assert len([g for g, _ in groups if g > 0]) >= 2, "the batch must exercise several prefixes"
    assert max_diff(scorer.forward(encoded), singles(scorer, encoded)) <= TOL


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
    assert max_diff(fp32.scorer.forward(encoded), singles(fp32.scorer, encoded)) <= TOL


def test_plan_covers_every_pair_under_budget(fp32: Reranker) -> None:
    scorer = fp32.scorer
    encoded = [scorer.encode(q, d) for q, d in mixed_pairs(per_query=12)]
    budget = 2000
    batches = scorer.plan(encoded, budget, 16)
    assert sorted(i for b in batches for i in b) == list(range(len(encoded)))
    assert all(len(b) <= 16 for b in batches)
    for b in batches:
        if len(b) > 1:
            groups = prefix_groups([encoded[i].input_ids for i in b])
            shared = {i: g for g, m in groups for i in m}
            width = max(len(encoded[b[k]]) - shared[k] for k in range(len(b)))
            assert width * len(b) <= budget
    scores = score_encoded(scorer, encoded, max_batch_tokens=budget, max_batch_size=16)
    assert max_diff(scores, singles(scorer, encoded)) <= TOL


def test_sharing_off_gives_same_scores(qwen3_dir: Path, fp32: Reranker) -> None:
    pairs = mixed_pairs(seed=5)
    plain = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32")
    plain.scorer.share_prefix = False  # type: ignore[attr-defined]
    enc = [fp32.scorer.encode(q, d) for q, d in pairs]
    assert max_diff(fp32.scorer.forward(enc), plain.scorer.forward(enc)) <= TOL


def test_eager_attention_takes_the_additive_mask(qwen3_dir: Path, fp32: Reranker) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(qwen3_dir), dtype=torch.float32, attn_implementation="eager"
    ).eval()
    eager = YesNoScorer(model, fp32.scorer.tokenizer, info=fp32.info)
    assert eager.share_prefix
    enc = [fp32.scorer.encode(q, d) for q, d in mixed_pairs(seed=9, per_query=3)]
    assert max_diff(eager.forward(enc), fp32.scorer.forward(enc)) <= TOL


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


def test_int8_is_cpu_only(qwen3_dir: Path) -> None:
    from rerankd.errors import ModelLoadError
    from rerankd.models.loading import resolve_dtype

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
