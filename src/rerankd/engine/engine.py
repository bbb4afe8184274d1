"""RerankEngine: a Scorer behind the dynamic batcher, with the request-level document handling
(truncation to n tokens, chunking with max-pooling) that the HTTP dialects ask for. The scorer cuts the
documents (`encode(max_document_tokens=)`, `encode_chunks`); the engine only decides the sizes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from rerankd.config import BatchConfig
from rerankd.engine.batcher import BatchObserver, DynamicBatcher
from rerankd.engine.cache import ScoreCache
from rerankd.errors import InvalidRequest
from rerankd.models.base import EncodedPair, ModelInfo, Scorer, sigmoid
from rerankd.ranking import max_pool, rank
from rerankd.spans import SpanRequest, SpanSearch, overlap_of, windows_per_span
from rerankd.types import Span

DEFAULT_OVERLAP_TOKENS = 32
MIN_DOCUMENT_ROOM = 8  # tokens a document must at least get for its score to mean anything


@dataclass(frozen=True)
class Scored:
    """Scores in input order (probabilities, or log-odds when raw), and the tokens the model read."""

    scores: list[float]
    prompt_tokens: int
    truncated: int  # how many inputs were cut to fit
    # Per input (document, or pair for score_pairs) that was degraded, for the answer's meta.warnings:
    cuts: tuple[Cut, ...] = ()  # cut to fit the model
    chunked: tuple[tuple[int, int], ...] = ()  # (input index, chunks) for inputs split into > 1 chunk
    # Per input when spans were asked for: its relevant spans, best first (None: not searched, being
    # past the request's top_n); empty when spans were not asked for.
    spans: tuple[tuple[Span, ...] | None, ...] = ()


@dataclass(frozen=True)
class Cut:
    index: int
    kept_tokens: int
    sent_tokens: int | None  # None where the scorer cannot tell (pre-templated input)


class Engine(Protocol):
    """What the server needs from an engine: the local RerankEngine, or a proxy to remote replicas."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def instruction(self) -> str | None: ...

    @property
    def depth(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def warm_up(self) -> None: ...

    async def rerank_scores(
        self,
        query: str,
        documents: Sequence[str],
        *,
        instruction: str | None = None,
        max_tokens_per_doc: int | None = None,
        max_chunks_per_doc: int | None = None,
        overlap_tokens: int | None = None,
        raw: bool = False,
        truncate: bool = True,
        spans: SpanRequest | None = None,
    ) -> Scored: ...

    async def score_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        instruction: str | None = None,
        max_tokens_per_doc: int | None = None,
        raw: bool = False,
        truncate: bool = True,
    ) -> Scored: ...


class RerankEngine:
    """A Scorer behind the dynamic batcher: the async sibling of the sync `Reranker` facade."""

    def __init__(
        self,
        scorer: Scorer,
        config: BatchConfig | None = None,
        *,
        instruction: str | None = None,
        observe: BatchObserver | None = None,
        observe_cache: Callable[[int, int], None] | None = None,
    ) -> None:
        """`observe(pairs, tokens)` after each batch; `observe_cache(hits, misses)` after each lookup
        in the score cache (`BatchConfig.score_cache` > 0)."""
        self.scorer = scorer
        self._observe_cache = observe_cache
        self._instruction = instruction
        self.config = config or BatchConfig()
        self.batcher = DynamicBatcher(
            scorer,
            max_batch_tokens=self.config.max_batch_tokens,
            max_batch_size=self.config.max_batch_size,
            max_queue=self.config.max_queue,
            observe=observe,
        )
        info = scorer.info
        self.cache = (
            ScoreCache(self.config.score_cache, f"{info.name}|{info.dtype}|{info.device}")
            if self.config.score_cache
            else None
        )

    async def _logits(self, encoded: list[EncodedPair]) -> list[float]:
        """Log-odds for encoded pairs: cached ones from the cache, the rest through the batcher."""
        if self.cache is None:
            return await self.batcher.submit(encoded)
        found, keys = self.cache.lookup(encoded)
        missing = [i for i, v in enumerate(found) if v is None]
        if self._observe_cache is not None:
            self._observe_cache(len(encoded) - len(missing), len(missing))
        if missing:
            fresh = await self.batcher.submit([encoded[i] for i in missing])
            self.cache.store([keys[i] for i in missing], fresh)
            for i, v in zip(missing, fresh, strict=True):
                found[i] = v
        return [v for v in found if v is not None]

    @property
    def info(self) -> ModelInfo:
        return self.scorer.info

    @property
    def instruction(self) -> str | None:
        return self._instruction

    def _instr(self, instruction: str | None) -> str | None:
        return instruction if instruction is not None else self._instruction

    @property
    def depth(self) -> int:
        """Pairs waiting or being scored."""
        return self.batcher.depth

    async def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    def warm_up(self) -> None:
        """One real forward pass (blocking), so the first request does not pay for lazy initialisation."""
        instr = self._instr(None)
        docs = ["a short document", "another, slightly longer document"]
        self.batcher.run_sync([self.scorer.encode("warm-up query", d, instruction=instr) for d in docs])

    def _check_inputs(self, at_least: int, field: str) -> None:
        """Refuse, before any tokenization, a request sure to need more model inputs than the whole
        queue holds (the batcher would refuse it only once every input had been tokenized)."""
        limit = self.config.max_queue
        if at_least > limit:
            raise InvalidRequest(
                f"this request needs at least {at_least} model inputs (documents x chunks, counted from "
                f"their lengths), more than the server's whole queue (--max-queue {limit}); "
                f"lower {field}, or send fewer or shorter documents"
            )

    def _room(self, query: str, instruction: str | None) -> int:
        """Tokens left for a document once the template, instruction and query are in.

        The scorer truncates the body's tail, so a query that fills the model's length would silently
        cut every document away and score them all alike: refuse it instead.
        """
        room = self.scorer.room(query, self._instr(instruction))
        if self.info.family == "yes_no" and room < MIN_DOCUMENT_ROOM:
            raise InvalidRequest(
                f"the query and instruction take {self.info.max_length - room} of the model's "
                f"{self.info.max_length} tokens, "
                "leaving no room for the documents; shorten the query. "
                "Please reduce the length of the input."  # vLLM's words, which its clients look for
            )
        return room

    def _prepare(
        self,
        query: str,
        documents: Sequence[str],
        instruction: str | None,
        max_tokens_per_doc: int | None,
        max_chunks_per_doc: int | None,
        overlap_tokens: int | None,
    ) -> tuple[list[EncodedPair], list[int], int]:
        """Encode pairs (blocking: run in a thread). Returns the pairs, per pair its document, and the
        tokens of each document the scores read (the spans are looked for there)."""
        room = self._room(query, instruction)
        instr = self._instr(instruction)
        if max_chunks_per_doc is not None and max_chunks_per_doc > 1:
            # Chunks as long as the room the template and query leave, or max_tokens_per_doc if shorter.
            size = max(1, min(room, max_tokens_per_doc or room))
            overlap = DEFAULT_OVERLAP_TOKENS if overlap_tokens is None else overlap_tokens
            limit = self.config.max_queue
            encoded: list[EncodedPair] = []
            owners: list[int] = []
            for i, d in enumerate(documents):
                # Chunks this document may add while every later one still gets its one: asking for one
                # more than that tells "too many" without templating more than the queue could take.
                left = limit - len(encoded) - (len(documents) - i - 1)
                parts = self.scorer.encode_chunks(
                    query,
                    d,
                    instruction=instr,
                    chunk_tokens=size,
                    overlap_tokens=min(overlap, size // 2),
                    max_chunks=min(max_chunks_per_doc, left + 1),
                )
                if len(parts) > left:
                    raise InvalidRequest(
                        f"this request's documents make more than {limit} model inputs once chunked "
                        f"(counted up to documents[{i}]), more than the server's whole queue "
                        f"(--max-queue {limit}); lower max_chunks_per_doc, or send fewer or shorter documents"
                    )
                encoded += parts
                owners += [i] * len(parts)
            step = max(1, size - min(overlap, size // 2, size - 1))
            return encoded, owners, size + (max_chunks_per_doc - 1) * step
        encoded = [
            self.scorer.encode(query, d, instruction=instr, max_document_tokens=max_tokens_per_doc)
            for d in documents
        ]
        return encoded, list(range(len(documents))), min(room, max_tokens_per_doc or room)

    async def rerank_scores(
        self,
        query: str,
        documents: Sequence[str],
        *,
        instruction: str | None = None,
        max_tokens_per_doc: int | None = None,
        max_chunks_per_doc: int | None = None,
        overlap_tokens: int | None = None,
        raw: bool = False,
        truncate: bool = True,
        spans: SpanRequest | None = None,
    ) -> Scored:
        """Scores of `documents` for `query`, in input order. `truncate=False` refuses, before any model
        work, an input too long for the model (TEI's `truncate: false`). `spans`: also find each (top)
        document's relevant spans, scored through the same batcher; the scores stay as without."""
        if not documents:
            return Scored([], 0, 0)
        self._check_inputs(
            fewest_inputs(
                [len(d) for d in documents],
                chunk_tokens=min(self.info.max_length, max_tokens_per_doc or self.info.max_length),
                max_chunks=max_chunks_per_doc or 1,
                token_chars=self.info.max_token_chars,
            ),
            "max_chunks_per_doc" if (max_chunks_per_doc or 1) > 1 else "documents",
        )
        encoded, owners, region = await asyncio.to_thread(
            self._prepare,
            query,
            documents,
            instruction,
            max_tokens_per_doc,
            max_chunks_per_doc,
            overlap_tokens,
        )
        if not truncate:
            _refuse_truncated(encoded, self.info.max_length)
        logits = await self._logits(encoded)
        if len(encoded) != len(documents):
            logits = max_pool(logits, owners, len(documents))  # sigmoid is monotonic: pool log-odds
        scored = _scored(encoded, logits, raw, owners)
        if spans is None:
            return scored
        # Ranked on the answer's own scores, so the documents searched are the ones the answer keeps.
        found, tokens = await self._spans(query, documents, scored.scores, instruction, spans, region, raw)
        return replace(scored, spans=found, prompt_tokens=scored.prompt_tokens + tokens)

    async def _spans(
        self,
        query: str,
        documents: Sequence[str],
        scores: Sequence[float],
        instruction: str | None,
        request: SpanRequest,
        region: int,
        raw: bool,
    ) -> tuple[tuple[tuple[Span, ...] | None, ...], int]:
        """Spans of the best `request.top_n` documents (`rerankd.spans`), and the tokens that cost.
        Two rounds through the batcher: every window, then the merged spans."""
        chosen = [r.index for r in rank(scores, top_n=request.top_n)]
        instr = self._instr(instruction)

        def windows() -> tuple[SpanSearch, list[EncodedPair]]:
            room = self.scorer.room(query, instr)
            size = request.window_tokens(room)
            search = SpanSearch(
                [documents[i] for i in chosen],
                lambda d: self.scorer.windows(
                    d, window_tokens=size, overlap_tokens=overlap_of(size), max_tokens=region
                ),
                request.max_spans,
                windows_per_span(room, size),
            )
            return search, self._encode_all(query, search.windows_to_score(), instr)

        search, first = await asyncio.to_thread(windows)
        merged = search.merged_to_score(await self._logits(first))
        second = await asyncio.to_thread(self._encode_all, query, merged, instr)
        found = search.spans(await self._logits(second) if second else [], _as_is if raw else sigmoid)
        out: list[tuple[Span, ...] | None] = [None] * len(documents)
        for i, s in zip(chosen, found, strict=True):
            out[i] = s
        return tuple(out), sum(len(e) for e in first + second)

    def _encode_all(self, query: str, texts: Sequence[str], instruction: str | None) -> list[EncodedPair]:
        return [self.scorer.encode(query, t, instruction=instruction) for t in texts]

    async def score_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        instruction: str | None = None,
        max_tokens_per_doc: int | None = None,
        raw: bool = False,
        truncate: bool = True,
    ) -> Scored:
        """Scores of arbitrary (query, document) pairs, in input order (vLLM's score API)."""

        self._check_inputs(len(pairs), "text_2")

        def prepare() -> list[EncodedPair]:
            for q in {q for q, _ in pairs}:
                self._room(q, instruction)
            instr = self._instr(instruction)
            return [
                self.scorer.encode(q, d, instruction=instr, max_document_tokens=max_tokens_per_doc)
                for q, d in pairs
            ]

        encoded = await asyncio.to_thread(prepare)
        if not truncate:
            _refuse_truncated(encoded, self.info.max_length)
        return _scored(encoded, await self._logits(encoded), raw)


def _as_is(x: float) -> float:
    return x


def fewest_inputs(
    lengths: Sequence[int], *, chunk_tokens: int, max_chunks: int, token_chars: int | None
) -> int:
    """The fewest model inputs documents of these character `lengths` can make, from their lengths
    alone: a token covers at most `token_chars` characters, so a document has at least
    ceil(length / token_chars) tokens and, chunked, at least ceil(tokens / chunk_tokens) chunks (the
    windows step by at most their size), up to `max_chunks`. Unknown `token_chars`: one per document."""
    if token_chars is None or max_chunks <= 1:
        return len(lengths)
    total = 0
    for n in lengths:
        tokens = -(-n // token_chars)
        total += min(max_chunks, max(1, -(-tokens // max(1, chunk_tokens))))
    return total


def _refuse_truncated(encoded: Sequence[EncodedPair], max_length: int) -> None:
    cut = sum(e.truncated for e in encoded)
    if cut:
        raise InvalidRequest(
            f"{cut} input(s) are longer than the model's {max_length} tokens and truncate is false; "
            "send truncate: true or shorter texts"
        )


def _scored(
    encoded: Sequence[EncodedPair], logits: list[float], raw: bool, owners: Sequence[int] | None = None
) -> Scored:
    """`owners[i]`: the input pair i belongs to (chunks of one document); None: one pair per input."""
    owner = owners or range(len(encoded))
    cuts = tuple(Cut(owner[i], len(e), e.sent_tokens) for i, e in enumerate(encoded) if e.truncated)
    counts = Counter(owner)
    return Scored(
        scores=logits if raw else [sigmoid(x) for x in logits],
        prompt_tokens=sum(len(e) for e in encoded),
        truncated=sum(e.truncated for e in encoded),
        cuts=cuts,
        chunked=tuple(sorted((i, n) for i, n in counts.items() if n > 1)),
    )
