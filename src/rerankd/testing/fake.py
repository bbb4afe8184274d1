"""A torch-free Scorer for tests that exercise serving, clients or the UI rather than scores.

`FakeScorer` implements the whole `Scorer` protocol of `rerankd.models.base` with a word tokenizer and a
lexical score, so an engine and a server run over it in milliseconds and without importing torch or
transformers. Its scores are deterministic (the same pair always gets the same log-odds, in any batch):

    log-odds = SPAN * (overlap - 0.5),  overlap = share of the query's distinct words found in the document

Words are `\\w+` runs and single punctuation marks, matched case-insensitively; each maps to a stable
integer id. A pair is laid out as the yes/no scorer lays it out, with one marker id per template part:

    [PREFIX] | [INSTRUCT] instruction [QUERY] query [DOCUMENT] document | [ANSWER]

and, like it, truncation cuts the body's tail to `max_length`, never the answer slot, and sets
`truncated`. `max_document_tokens` cuts the document first (that alone does not set `truncated`, as
with the real scorer)."""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rerankd.config import DEFAULT_MAX_LENGTH
from rerankd.errors import InvalidRequest
from rerankd.models.base import EncodedPair, ModelInfo, PlannedBatch, plan_by_length
from rerankd.templates import DEFAULT_INSTRUCTION

if TYPE_CHECKING:
    from rerankd.models.base import Scorer

PREFIX, INSTRUCT, QUERY, DOCUMENT, ANSWER = 1, 2, 3, 4, 5
FIRST_WORD_ID = 16  # ids below are markers, so a word never reads as one
VOCAB_SIZE = 1 << 20
SPAN = 6.0  # log-odds from -3 (no query word in the document) to +3 (all of them)

_WORD = re.compile(r"\w+|[^\w\s]")


def word_ids(text: str) -> list[int]:
    """The text's words as stable ids (crc32, not hash(): the same in every process)."""
    return [FIRST_WORD_ID + zlib.crc32(w.lower().encode("utf-8")) % VOCAB_SIZE for w in _WORD.findall(text)]


def lexical_log_odds(query_ids: Sequence[int], document_ids: Sequence[int]) -> float:
    words = set(query_ids)
    overlap = len(words & set(document_ids)) / len(words) if words else 0.0
    return SPAN * (overlap - 0.5)


class FakeScorer:
    """A yes/no-family Scorer without a model. `delay_s` makes each forward pass take that long (for
    queueing, overload and drain tests); `batches` records the size of every forward pass run."""

    def __init__(
        self,
        *,
        name: str = "fake-reranker",
        max_length: int = DEFAULT_MAX_LENGTH,
        delay_s: float = 0.0,
    ) -> None:
        if max_length < 3:
            raise InvalidRequest(f"max_length={max_length} leaves no room for text")
        self.info = ModelInfo(
            name=name,
            family="yes_no",
            architecture="FakeScorer",
            max_length=max_length,
            dtype="float32",
            device="cpu",
            templated=True,
        )
        self.delay_s = delay_s
        self.batches: list[int] = []
        self._lock = threading.Lock()

    # --- encode ---------------------------------------------------------------------------------

    def _head(self, query: str, instruction: str | None) -> list[int]:
        instr = DEFAULT_INSTRUCTION if instruction is None else instruction
        return [INSTRUCT, *word_ids(instr), QUERY, *word_ids(query), DOCUMENT]

    def _pair(self, head: list[int], document_ids: Sequence[int]) -> EncodedPair:
        body = head + list(document_ids)
        room = self.info.max_length - 2  # PREFIX and ANSWER always stay
        cut = len(body) > room
        return EncodedPair(
            [PREFIX, *body[:room], ANSWER], truncated=cut, sent_tokens=len(body) + 2 if cut else None
        )

    def encode(
        self,
        query: str,
        document: str,
        *,
        instruction: str | None = None,
        max_document_tokens: int | None = None,
    ) -> EncodedPair:
        doc = word_ids(document)
        if max_document_tokens is not None:
            if max_document_tokens < 1:  # as the real scorers refuse it
                raise InvalidRequest(f"a document cut to {max_document_tokens} tokens keeps nothing")
            doc = doc[:max_document_tokens]
        return self._pair(self._head(query, instruction), doc)

    def encode_chunks(
        self,
        query: str,
        document: str,
        *,
        instruction: str | None = None,
        chunk_tokens: int,
        overlap_tokens: int,
        max_chunks: int,
    ) -> list[EncodedPair]:
        """Windows as `models.documents.chunk_text` cuts them: a document that fits is one pair, text past
        the last window is dropped."""
        head = self._head(query, instruction)
        doc = word_ids(document)
        if len(doc) <= chunk_tokens or max_chunks <= 1:
            return [self._pair(head, doc[:chunk_tokens])]
        step = max(1, chunk_tokens - min(overlap_tokens, chunk_tokens - 1))
        out: list[EncodedPair] = []
        start = 0
        while start < len(doc) and len(out) < max_chunks:
            end = min(start + chunk_tokens, len(doc))
            out.append(self._pair(head, doc[start:end]))
            if end == len(doc):
                break
            start += step
        return out

    def windows(
        self, document: str, *, window_tokens: int, overlap_tokens: int, max_tokens: int
    ) -> list[tuple[int, int]]:
        """`models.documents.token_windows` over this scorer's words."""
        words = [m.span() for m in _WORD.finditer(document)][: max(1, max_tokens)]
        if not words:
            return []
        step = max(1, window_tokens - min(overlap_tokens, window_tokens - 1))
        out = []
        for start in range(0, len(words), step):
            end = min(start + window_tokens, len(words))
            out.append((words[start][0], words[end - 1][1]))
            if end == len(words):
                break
        return out

    def room(self, query: str, instruction: str | None = None) -> int:
        return self.info.max_length - len(self.encode(query, "", instruction=instruction))

    # --- plan and forward -----------------------------------------------------------------------

    def plan(
        self, encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
    ) -> list[PlannedBatch]:
        return plan_by_length(encoded, max_batch_tokens, max_batch_size)

    def forward(self, batch: PlannedBatch) -> list[float]:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.batches.append(len(batch))
        return [_score(pair.input_ids) for pair in batch.pairs]


def _score(ids: Sequence[int]) -> float:
    """Read the query and document words back out of a pair laid out by `FakeScorer._pair`."""
    ids = list(ids)
    q = ids.index(QUERY) + 1 if QUERY in ids else len(ids)
    d = ids.index(DOCUMENT, q) + 1 if DOCUMENT in ids[q:] else len(ids)
    end = len(ids) - 1  # the ANSWER slot
    return lexical_log_odds(ids[q : min(d - 1, end)], ids[d:end])


if TYPE_CHECKING:  # mypy checks that FakeScorer is a complete Scorer

    def _is_a_scorer(fake: FakeScorer) -> Scorer:
        return fake
