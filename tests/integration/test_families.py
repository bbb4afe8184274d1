"""Each LLM reranker family on a random-weight model of its architecture, scored by rerankd (prefix reuse,
two-row fp32 head, batching) and by an independent reimplementation of the family's own code written
here: full forward pass, full-vocabulary logits, padded batches. fp32, max |difference| <= 1e-5, with
truncation, a custom instruction, and one pair vs a batch.

The references follow FlagEmbedding's BaseLLMReranker.compute_score_single_gpu (bge-reranker-v2-gemma)
and mixedbread's MxbaiRerankV2.prepare_inputs/forward (mxbai-rerank-v2). transformers 5 dropped
`prepare_for_model`, so its `truncation="only_second"` is spelled out in `_only_second`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from rerankd import Reranker
from rerankd.errors import UnsupportedModelError
from rerankd.models.base import PlannedBatch, score_encoded
from rerankd.models.loading import load_scorer
from rerankd.testing.reference import ReferenceQwen3Reranker
from rerankd.testing.synthetic import build_gemma_reranker, build_qwen2_reranker

TOL = 1e-5
QUERY = "what is the capital of France"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Gravity is a force that attracts two bodies towards each other.",
    "北京是中华人民共和国的首都。",
    "python asyncio crawler",
    "",
    "the capital " * 40,
]
INSTRUCTION = "Judge whether the passage names a capital city"


def assert_close(ours: list[float], theirs: list[float]) -> None:
    assert len(ours) == len(theirs)
    diff = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    assert diff <= TOL, f"max |difference| {diff:.3g} > {TOL}"


def _only_second(first: list[int], second: list[int], max_length: int) -> list[int]:
    """transformers' prepare_for_model(first, second, truncation="only_second", max_length=...):
    tokens over the limit come off the end of `second`; when `second` is too short, nothing is cut."""
    over = len(first) + len(second) - max_length
    if over > 0 and len(second) > over:
        second = second[: len(second) - over]
    return first + second


def _forward_last(model: Any, tokenizer: Any, items: list[list[int]], batch_size: int = 4) -> torch.Tensor:
    """Full-vocabulary logits at each item's last real token, batches padded as the tokenizer pads."""
    out = []
    for start in range(0, len(items), batch_size):
        chunk = [
            {"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in items[start : start + batch_size]
        ]
        batch = tokenizer.pad(chunk, padding=True, pad_to_multiple_of=8, return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits.float()
        mask = batch["attention_mask"]
        if bool(mask[:, -1].all()):  # left padding: the last column is every row's last token
            out.append(logits[:, -1, :])
        else:
            last = mask.sum(dim=1) - 1
            out.append(logits[torch.arange(len(chunk)), last])
    return torch.cat(out)


class FlagLLMReference:
    """bge-reranker-v2-gemma as FlagEmbedding scores it (scores unnormalized: the "Yes" logit)."""

    PROMPT = (
        "Given a query A and a passage B, determine whether the passage contains an answer to the query "
        "by providing a prediction of either 'Yes' or 'No'."
    )

    def __init__(self, model_dir: Path, max_length: int = 512) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.max_length = max_length
        self.yes_loc = self.tok("Yes", add_special_tokens=False)["input_ids"][0]

    def items(self, query: str, docs: list[str], prompt: str | None = None) -> list[list[int]]:
        tok, n = self.tok, self.max_length
        q_in = tok(
            [f"A: {query}"] * len(docs), add_special_tokens=False, max_length=n * 3 // 4, truncation=True
        )
        p_in = tok([f"B: {d}" for d in docs], add_special_tokens=False, max_length=n, truncation=True)
        prompt_ids = tok(prompt or self.PROMPT, add_special_tokens=False)["input_ids"]
        sep = tok("\n", add_special_tokens=False)["input_ids"]
        bos = (
            [tok.bos_token_id]
            if tok.bos_token_id is not None and tok.bos_token_id != tok.pad_token_id
            else []
        )
        out = []
        for q, p in zip(q_in["input_ids"], p_in["input_ids"], strict=True):
            pair = _only_second(bos + q, sep + p, n + len(sep) + len(prompt_ids))
            out.append(pair + sep + prompt_ids)
        return out

    def score(self, query: str, docs: list[str], prompt: str | None = None) -> list[float]:
        logits = _forward_last(self.model, self.tok, self.items(query, docs, prompt))
        return logits[:, self.yes_loc].tolist()


class MxbaiV2Reference:
    """mxbai-rerank-v2 as mixedbread's package scores it: l("1") - l("0"), left padding."""

    TASK = (
        "You are a search relevance expert who evaluates how well documents match search queries. For each "
        "query-document pair, carefully analyze the semantic relationship between them, then provide your "
        "binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
    )
    PREFIX = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n"
    )
    SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"

    def __init__(self, model_dir: Path, max_length: int = 8192) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.tok.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()

        def ids(x: str) -> list[int]:
            return self.tok(x, add_special_tokens=False)["input_ids"]

        self.ids = ids
        self.yes, self.no = ids("1")[0], ids("0")[0]
        self.task, self.sep, self.pre, self.suf = (
            ids(self.TASK),
            ids("\n"),
            ids(self.PREFIX),
            ids(self.SUFFIX),
        )
        self.predefined = len(self.pre) + len(self.task) + len(self.suf) + len(self.sep)
        self.model_max = self.tok.model_max_length
        self.max_length = min(max_length, self.model_max - self.predefined)

    def items(self, query: str, docs: list[str], instruction: str | None = None) -> list[list[int]]:
        out = []
        for d in docs:
            qp = f"query: {query}"
            if instruction:
                qp = f"instruction: {instruction}" + "\n" + qp
            q = self.tok(qp, add_special_tokens=False, max_length=self.max_length * 3 // 4, truncation=True)
            q_ids = q["input_ids"]
            doc_max = min(self.model_max - len(q_ids) - self.predefined, self.max_length)
            dd = self.tok(f"document: {d}", add_special_tokens=False, max_length=doc_max, truncation=True)
            pair = _only_second(q_ids, self.sep + dd["input_ids"], self.max_length)
            out.append(self.pre + pair + self.sep + self.task + self.suf)
        return out

    def score(self, query: str, docs: list[str], instruction: str | None = None) -> list[float]:
        logits = _forward_last(self.model, self.tok, self.items(query, docs, instruction))
        return (logits[:, self.yes] - logits[:, self.no]).tolist()


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gemma_reranker(tmp_path_factory.mktemp("families") / "tiny-bge-gemma")


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path | None) -> Path:
    if tokenizer_dir is None:
        pytest.skip("mxbai-rerank-v2 needs the real Qwen tokenizer ('0'/'1' tokens)")
    return build_qwen2_reranker(
        tmp_path_factory.mktemp("families") / "tiny-mxbai-v2", tokenizer_dir=tokenizer_dir
    )


def _ours(scorer: Any, query: str, docs: list[str], instruction: str | None = None) -> list[float]:
    encoded = [scorer.encode(query, d, instruction=instruction) for d in docs]
    return score_encoded(scorer, encoded, max_batch_tokens=4096)


def _single(scorer: Any, query: str, docs: list[str], instruction: str | None = None) -> list[float]:
    return [
        scorer.forward(PlannedBatch.of([scorer.encode(query, d, instruction=instruction)]))[0] for d in docs
    ]


@pytest.mark.parametrize("max_length", [512, 24])
def test_bge_gemma_parity(gemma_dir: Path, max_length: int) -> None:
    scorer: Any = load_scorer(str(gemma_dir), device="cpu", dtype="float32", max_length=max_length)
    ref = FlagLLMReference(gemma_dir, max_length=max_length)
    assert scorer.info.template == "bge-reranker-v2-gemma"
    assert scorer.share_prefix  # the Gemma path that crashed now shares prefixes
    assert [e.input_ids for e in (scorer.encode(QUERY, d) for d in DOCS)] == ref.items(QUERY, DOCS)
    theirs = ref.score(QUERY, DOCS)
    assert max(theirs) - min(theirs) > 0.05  # a model scoring all alike would make this vacuous
    assert_close(_ours(scorer, QUERY, DOCS), theirs)
    assert_close(_single(scorer, QUERY, DOCS), theirs)
    assert_close(_ours(scorer, QUERY, DOCS, INSTRUCTION), ref.score(QUERY, DOCS, INSTRUCTION))
    if max_length == 24:
        long_query = "capital of France " * 20
        encoded = [scorer.encode(long_query, d) for d in DOCS]
        assert all(e.truncated for e in encoded[:2])
        tail = ref.items(long_query, ["x"])[0][
            -len(ref.tok(ref.PROMPT, add_special_tokens=False)["input_ids"]) - 1 :
        ]
        assert all(e.input_ids[-len(tail) :] == tail for e in encoded)  # the answer slot stays last
        assert_close(_ours(scorer, long_query, DOCS), ref.score(long_query, DOCS))


@pytest.mark.parametrize("max_length", [8192, 40])
def test_mxbai_v2_parity(qwen2_dir: Path, max_length: int) -> None:
    scorer: Any = load_scorer(str(qwen2_dir), device="cpu", dtype="float32", max_length=max_length)
    ref = MxbaiV2Reference(qwen2_dir, max_length=max_length)
    assert scorer.info.template == "mxbai-rerank-v2"
    assert scorer.share_prefix
    assert [e.input_ids for e in (scorer.encode(QUERY, d) for d in DOCS)] == ref.items(QUERY, DOCS)
    theirs = ref.score(QUERY, DOCS)
    assert max(theirs) - min(theirs) > 0.05
    assert_close(_ours(scorer, QUERY, DOCS), theirs)
    assert_close(_single(scorer, QUERY, DOCS), theirs)
    assert_close(_ours(scorer, QUERY, DOCS, INSTRUCTION), ref.score(QUERY, DOCS, INSTRUCTION))
    if max_length == 40:
        assert scorer.encode(QUERY, DOCS[-1]).truncated
        long_query = "capital of France " * 20
        assert_close(_ours(scorer, long_query, DOCS, INSTRUCTION), ref.score(long_query, DOCS, INSTRUCTION))


def test_mxbai_clamps_to_the_tokenizer_limit(qwen2_dir: Path, tmp_path: Path) -> None:
    """The package shrinks max_length so that the whole input fits the tokenizer's model_max_length."""
    import json
    import shutil

    small = tmp_path / "mxbai-small-limit"
    shutil.copytree(qwen2_dir, small)
    cfg_path = small / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_max_length"] = 120
    cfg_path.write_text(json.dumps(cfg))
    scorer: Any = load_scorer(str(small), device="cpu", dtype="float32", max_length=8192)
    ref = MxbaiV2Reference(small, max_length=8192)
    docs = ["the capital " * 80, "Paris"]
    assert [e.input_ids for e in (scorer.encode(QUERY, d) for d in docs)] == ref.items(QUERY, docs)
    assert all(len(scorer.encode(QUERY, d)) <= 120 for d in docs)
    assert_close(_ours(scorer, QUERY, docs), ref.score(QUERY, docs))


def test_qwen3_recognised_and_unchanged(qwen3_dir: Path) -> None:
    scorer: Any = load_scorer(str(qwen3_dir), device="cpu", dtype="float32")
    assert scorer.info.template == "qwen3-reranker"
    ref = ReferenceQwen3Reranker(str(qwen3_dir))
    probs = [1 / (1 + math.exp(-x)) for x in _ours(scorer, QUERY, DOCS, INSTRUCTION)]
    assert_close(probs, ref.score(QUERY, DOCS, INSTRUCTION))


def test_template_override_and_library_front(qwen2_dir: Path, gemma_dir: Path) -> None:
    # A Qwen2 model fine-tuned on the Qwen3-Reranker template: template= overrides the recognition.
    scorer: Any = load_scorer(str(qwen2_dir), device="cpu", dtype="float32", template="qwen3-reranker")
    assert scorer.info.template == "qwen3-reranker"
    assert (
        scorer.encode(QUERY, "d").input_ids[-1]
        == scorer.tokenizer.encode("\n\n", add_special_tokens=False)[-1]
    )
    # The library front over the Gemma family (it crashed in the shared-prefix path): probabilities are
    # sigmoid of the "Yes" logit, as FlagEmbedding's normalize=True gives them.
    reranker = Reranker.from_pretrained(str(gemma_dir), device="cpu", dtype="float32", max_length=512)
    expected = [1 / (1 + math.exp(-x)) for x in FlagLLMReference(gemma_dir).score(QUERY, DOCS)]
    assert_close(reranker.score(QUERY, DOCS), expected)


def test_chunks_keep_the_tail(gemma_dir: Path) -> None:
    from rerankd.models.documents import chunk_text

    scorer: Any = load_scorer(str(gemma_dir), device="cpu", dtype="float32", max_length=512)
    doc = " ".join(f"{w} {i}" for i, w in enumerate(["Paris", "gravity", "python", "capital", "France"] * 12))
    parts = scorer.encode_chunks(QUERY, doc, chunk_tokens=32, overlap_tokens=4, max_chunks=4)
    assert len(parts) == 4
    tail = scorer.pairs.default_tail
    assert all(p.input_ids[-len(tail) :] == tail for p in parts)
    # Each chunk scores as the official code scores that window of the document.
    texts = chunk_text(scorer.tokenizer, doc, 32, 4, 4)
    assert_close(
        score_encoded(scorer, parts, max_batch_tokens=4096), FlagLLMReference(gemma_dir).score(QUERY, texts)
    )


def test_unknown_names_are_refused(qwen3_dir: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="known families: yes_no, cross_encoder"):
        load_scorer(str(qwen3_dir), device="cpu", family="qwen3")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedModelError, match="bge-reranker-v2-gemma, mxbai-rerank-v2"):
        load_scorer(str(qwen3_dir), device="cpu", template="llama-reranker")
    with pytest.raises(UnsupportedModelError, match="not cross-encoders"):
        load_scorer(str(qwen3_dir), device="cpu", family="cross_encoder", template="qwen3-reranker")


def test_gemma2_softcap_and_sliding_window(tmp_path: Path) -> None:
    """Gemma 2: the two-row head applies the final logit soft-cap as the full head does; its
    sliding-window layers take the plain path (prefix reuse assumes full attention)."""
    model_dir = build_gemma_reranker(tmp_path / "tiny-gemma2", gemma2=True)
    scorer: Any = load_scorer(str(model_dir), device="cpu", dtype="float32", max_length=64)
    assert scorer.info.template == "bge-reranker-v2-gemma"
    assert not scorer.share_prefix
    ref = FlagLLMReference(model_dir, max_length=64)
    theirs = ref.score(QUERY, DOCS, INSTRUCTION)
    assert max(theirs) - min(theirs) > 0.05
    assert_close(_ours(scorer, QUERY, DOCS, INSTRUCTION), theirs)
    assert_close(_single(scorer, QUERY, DOCS, INSTRUCTION), theirs)


def test_engine_batches_several_queries_per_family(gemma_dir: Path, qwen2_dir: Path) -> None:
    """The serving path (`rerankd serve`: engine + dynamic batcher) on each new family, concurrent
    requests of different queries batched together, raw log-odds as the reference gives them."""
    import asyncio

    from rerankd.engine.engine import RerankEngine

    queries = [QUERY, "gravity", "北京"]
    for model_dir, ref_cls in ((gemma_dir, FlagLLMReference), (qwen2_dir, MxbaiV2Reference)):
        scorer: Any = load_scorer(str(model_dir), device="cpu", dtype="float32", max_length=512)
        ref = ref_cls(model_dir, max_length=512)
        engine = RerankEngine(scorer)

        async def run(engine: RerankEngine = engine) -> list[list[float]]:
            await engine.start()
            try:
                got = await asyncio.gather(*(engine.rerank_scores(q, DOCS, raw=True) for q in queries))
            finally:
                await engine.stop()
            return [g.scores for g in got]

        for q, ours in zip(queries, asyncio.run(run()), strict=True):
            assert_close(ours, ref.score(q, DOCS))
