"""The library's front: `Reranker.from_pretrained(...)`, then `.score()` or `.rerank()`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from rerankd.config import BatchConfig, Family, ModelConfig, load_scorer
from rerankd.errors import InvalidRequest
from rerankd.models.base import EncodedPair, ModelInfo, Scorer, score_encoded, sigmoid
from rerankd.ranking import rank, validate_top_n
from rerankd.spans import DEFAULT_MAX_SPANS, SpanRequest, SpanSearch, overlap_of, windows_per_span
from rerankd.spans import validate as validate_spans
from rerankd.types import Document, DocumentLike, RerankResult, Span, Usage, as_document


class Reranker:
    """A local reranker: a Scorer plus ranking, scored in the calling thread (its async sibling over a
    Scorer is `rerankd.engine.RerankEngine`). Scores are probabilities in [0, 1]."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        instruction: str | None = None,
        batch: BatchConfig | None = None,
    ) -> None:
        self.scorer = scorer
        self.instruction = instruction
        self.batch = batch or BatchConfig()

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str = ModelConfig.device,
        dtype: str = ModelConfig.dtype,
        max_length: int = ModelConfig.max_length,
        instruction: str | None = None,
        family: Family | None = None,
        max_batch_tokens: int = BatchConfig.max_batch_tokens,
        trust_remote_code: bool = False,
        batch_invariant: bool = False,
    ) -> Reranker:
        """`model`: a hub id (downloaded on first use; HF_HUB_OFFLINE and HF_ENDPOINT respected) or a
        local directory. `family` overrides the detection from the config ("yes_no" or "cross_encoder").
        `batch_invariant`: a causal LM's scores bitwise independent of the batch (README: Batch-invariant
        scores)."""
        config = ModelConfig(
            model=model,
            device=device,
            dtype=dtype,
            max_length=max_length,
            instruction=instruction,
            family=family,
            trust_remote_code=trust_remote_code,
            batch_invariant=batch_invariant,
        )
        return cls.from_config(config, BatchConfig(max_batch_tokens=max_batch_tokens))

    @classmethod
    def from_config(cls, config: ModelConfig, batch: BatchConfig | None = None) -> Reranker:
        return cls(load_scorer(config), instruction=config.instruction, batch=batch)

    @property
    def info(self) -> ModelInfo:
        return self.scorer.info

    def encode(
        self, query: str, documents: Sequence[DocumentLike], *, instruction: str | None = None
    ) -> list[EncodedPair]:
        if not isinstance(query, str):
            raise InvalidRequest(f"query must be a string, got {type(query).__name__}")
        if isinstance(documents, str | Document):
            raise InvalidRequest("documents must be a list of strings or Documents, not a single one")
        instr = instruction if instruction is not None else self.instruction
        return [self.scorer.encode(query, as_document(d).text, instruction=instr) for d in documents]

    def logits(self, encoded: Sequence[EncodedPair]) -> list[float]:
        """Log-odds for encoded pairs, in input order (the scorer's plan under the token budget)."""
        return score_encoded(
            self.scorer,
            encoded,
            max_batch_tokens=self.batch.max_batch_tokens,
            max_batch_size=self.batch.max_batch_size,
        )

    def score(
        self, query: str, documents: Sequence[DocumentLike], *, instruction: str | None = None
    ) -> list[float]:
        """Relevance probabilities in input order."""
        return [sigmoid(x) for x in self.logits(self.encode(query, documents, instruction=instruction))]

    def rerank(
        self,
        query: str,
        documents: Sequence[DocumentLike],
        *,
        top_n: int | None = None,
        instruction: str | None = None,
        return_documents: bool = False,
        return_spans: bool = False,
        max_spans: int = DEFAULT_MAX_SPANS,
        span_tokens: int | None = None,
    ) -> RerankResult:
        """Documents sorted by relevance, best first; `top_n` keeps the best n (None: all).

        `return_spans`: each result also carries its relevant spans (`RankedDocument.spans`, at most
        `max_spans`, best first, from windows of `span_tokens` tokens; see docs/spans.md). Each span's
        score is `score(query, [span.text])`; the documents' scores are the same as without."""
        validate_top_n(top_n)
        if return_spans:
            validate_spans(max_spans, span_tokens, self.info.max_length)
        docs: list[Document] = [as_document(d) for d in documents]
        encoded = self.encode(query, docs, instruction=instruction)
        scores = [sigmoid(x) for x in self.logits(encoded)]
        results = rank(scores, docs, top_n=top_n, return_documents=return_documents)
        tokens = sum(len(e) for e in encoded)
        if return_spans and results:
            found, used = self._spans(
                query, [docs[r.index].text for r in results], instruction, max_spans, span_tokens
            )
            results = tuple(replace(r, spans=s) for r, s in zip(results, found, strict=True))
            tokens += used
        return RerankResult(results=results, model=self.info.name, usage=Usage(prompt_tokens=tokens))

    def _spans(
        self,
        query: str,
        texts: Sequence[str],
        instruction: str | None,
        max_spans: int,
        span_tokens: int | None,
    ) -> tuple[list[tuple[Span, ...]], int]:
        """Each text's spans (`rerankd.spans`): windows over the tokens its score read, then merged."""
        instr = instruction if instruction is not None else self.instruction
        room = self.scorer.room(query, instr)
        size = SpanRequest(max_spans, span_tokens).window_tokens(room)
        search = SpanSearch(
            texts,
            lambda d: self.scorer.windows(
                d, window_tokens=size, overlap_tokens=overlap_of(size), max_tokens=room
            ),
            max_spans,
            windows_per_span(room, size),
        )
        first = self.encode(query, search.windows_to_score(), instruction=instruction)
        merged = self.encode(query, search.merged_to_score(self.logits(first)), instruction=instruction)
        found = search.spans(self.logits(merged), sigmoid)
        return found, sum(len(e) for e in first + merged)


def load_reranker(config: ModelConfig, batch: BatchConfig | None = None) -> Reranker:
    """The sync library front over a freshly loaded scorer: the one place a config becomes a Reranker."""
    return Reranker.from_config(config, batch)
