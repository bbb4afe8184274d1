"""Parity with the official algorithm (fp32, max |difference| <= 1e-5), against a naive implementation
written in the tests, and cross-encoders against AutoModelForSequenceClassification used directly."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from rerankd import Document, Reranker
from rerankd.testing.reference import PREFIX, SUFFIX, ReferenceQwen3Reranker

TOL = 1e-5

DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "异步爬虫可以使用 asyncio 和 aiohttp 实现。",
    "🚀🙂 emoji only 🎉",
    "",
    "Paris est la capitale de la France.",
]


@pytest.fixture(scope="module")
def reference(qwen3_dir: Path) -> ReferenceQwen3Reranker:
    return ReferenceQwen3Reranker(str(qwen3_dir))


def assert_close(ours: list[float], theirs: list[float]) -> None:
    assert len(ours) == len(theirs)
    diff = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    assert diff <= TOL, f"max |difference| {diff:.3g} > {TOL}"


def test_scores_have_spread(qwen3_reranker: Reranker) -> None:
    # A random model scoring everything ~0.5 would make every other test here vacuous.
    scores = qwen3_reranker.score("What is the capital of China?", DOCS)
    assert max(scores) - min(scores) > 0.2


@pytest.mark.parametrize("query", ["What is the capital of China?", "如何实现Python中的异步爬虫?", "🙂?"])
def test_parity_mixed_languages(
    qwen3_reranker: Reranker, reference: ReferenceQwen3Reranker, query: str
) -> None:
    assert_close(qwen3_reranker.score(query, DOCS), reference.score(query, DOCS))


def test_parity_custom_instruction(qwen3_reranker: Reranker, reference: ReferenceQwen3Reranker) -> None:
    instruction = "Given a question, retrieve Chinese passages that answer it"
    ours = qwen3_reranker.score("capital?", DOCS, instruction=instruction)
    assert_close(ours, reference.score("capital?", DOCS, instruction=instruction))
    # The instruction must actually reach the model.
    default = qwen3_reranker.score("capital?", DOCS)
    assert max(abs(a - b) for a, b in zip(ours, default, strict=True)) > 1e-4


def test_parity_one_pair_vs_batch_of_40(qwen3_reranker: Reranker, reference: ReferenceQwen3Reranker) -> None:
    rng = random.Random(7)
    words = [
        "the",
        "capital",
        "city",
        "river",
        "gravity",
        "force",
        "北京",
        "首都",
        "python",
        "asyncio",
        "data",
        "model",
        "🙂",
        "rank",
    ]
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 120))) for _ in range(40)]
    batch = qwen3_reranker.score("which city is the capital?", docs)
    singles = [qwen3_reranker.score("which city is the capital?", [d])[0] for d in docs]
    assert_close(batch, singles)
    assert_close(batch, reference.score("which city is the capital?", docs))


def test_parity_truncation(qwen3_dir: Path) -> None:
    max_length = 120
    ours = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32", max_length=max_length)
    ref = ReferenceQwen3Reranker(str(qwen3_dir), max_length=max_length)
    long_docs = [("a long document about the capital of China " * 60), "短文档", "x " * 500]
    encoded = ours.encode("capital?", long_docs)
    assert [e.truncated for e in encoded] == [True, False, True]
    assert all(len(e) <= max_length for e in encoded)
    # The template's tail survives truncation: the answer slot stays last.
    suffix_ids = ref.suffix_tokens
    assert all(e.input_ids[-len(suffix_ids) :] == suffix_ids for e in encoded)
    assert_close(ours.score("capital?", long_docs), ref.score("capital?", long_docs))


def test_pretemplated_input_scored_verbatim(
    qwen3_reranker: Reranker, reference: ReferenceQwen3Reranker
) -> None:
    instruction = "Given a web search query, retrieve relevant passages that answer the query"
    query = "What is the capital of China?"
    # vLLM's documented client-side recipe: the template split across query and document.
    templated_query = f"{PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n"
    templated_docs = [f"<Document>: {d}{SUFFIX}" for d in DOCS]
    ours = [qwen3_reranker.score(templated_query, [d])[0] for d in templated_docs]
    assert_close(ours, reference.score(query, DOCS, instruction=instruction))
    # Never wrapped twice: the token sequence has one system prompt.
    ids = qwen3_reranker.encode(templated_query, templated_docs[:1])[0].input_ids
    im_start = qwen3_reranker.scorer.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids.count(im_start) == 3


def test_pretemplated_whole_prompt_in_document(
    qwen3_reranker: Reranker, reference: ReferenceQwen3Reranker
) -> None:
    full = f"{PREFIX}<Instruct>: judge\n<Query>: q\n<Document>: Beijing{SUFFIX}"
    assert_close(qwen3_reranker.score("", [full]), reference.compute([full[len(PREFIX) : -len(SUFFIX)]]))


def test_pretemplated_without_suffix_gets_answer_slot(qwen3_reranker: Reranker) -> None:
    query = f"{PREFIX}<Instruct>: judge\n<Query>: q\n"
    with_suffix = qwen3_reranker.score(query, [f"<Document>: Beijing{SUFFIX}"])
    without = qwen3_reranker.score(query, ["<Document>: Beijing"])
    assert_close(without, with_suffix)


def test_documents_as_objects(qwen3_reranker: Reranker) -> None:
    docs = [Document(text=d, id=str(i), metadata={"n": i}) for i, d in enumerate(DOCS)]
    result = qwen3_reranker.rerank("capital", docs, return_documents=True, top_n=3)
    assert len(result) == 3
    assert result.scores == sorted(result.scores, reverse=True)
    assert all(r.document is docs[r.index] for r in result)
    assert result.usage.prompt_tokens > 0


@pytest.mark.parametrize("num_labels", [1, 2])
def test_cross_encoder_parity(tmp_path: Path, num_labels: int) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerankd.testing.synthetic import build_cross_encoder

    model_dir = build_cross_encoder(tmp_path / "ce", num_labels=num_labels)
    query = "what is the capital of france"
    docs = ["paris is the capital and largest city of france", "gravity is a force", "", "the fox " * 200]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        inputs = tok([query] * len(docs), docs, padding=True, truncation=True, return_tensors="pt")
        logits = model(**inputs).logits
    expected = (torch.sigmoid(logits[:, 0]) if num_labels == 1 else torch.softmax(logits, -1)[:, 1]).tolist()
    ours = Reranker.from_pretrained(str(model_dir), device="cpu", dtype="float32")
    assert ours.info.family == "cross_encoder"
    scores = ours.score(query, docs)
    assert_close(scores, expected)
    assert max(scores) - min(scores) > 0.05
    assert ours.encode(query, docs)[-1].truncated


def test_empty_documents_give_empty_result(qwen3_reranker: Reranker) -> None:
    assert qwen3_reranker.score("q", []) == []
    assert len(qwen3_reranker.rerank("q", [])) == 0


@pytest.mark.parametrize("top_n", [0, -1])
def test_bad_top_n(qwen3_reranker: Reranker, top_n: int) -> None:
    from rerankd import InvalidRequest

    with pytest.raises(InvalidRequest, match="top_n"):
        qwen3_reranker.rerank("q", ["a"], top_n=top_n)


def test_top_n_clamped(qwen3_reranker: Reranker) -> None:
    assert len(qwen3_reranker.rerank("q", ["a", "b"], top_n=10)) == 2


def test_parity_with_fallback_tokenizer(tmp_path: Path) -> None:
    # The path machines without ../shared take: a tokenizer trained at test time.
    from rerankd.testing.synthetic import build_qwen3_reranker

    model_dir = build_qwen3_reranker(tmp_path / "fallback", tokenizer_dir=None)
    docs = ["Beijing is the capital of China", "gravity force", "北京 首都", "🙂🚀", ""]
    ours = Reranker.from_pretrained(str(model_dir), device="cpu").score("capital China", docs)
    assert_close(ours, ReferenceQwen3Reranker(str(model_dir)).score("capital China", docs))
