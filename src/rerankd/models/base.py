"""The Scorer protocol every backend implements, and what it says about itself (ModelInfo).

A scorer turns (query, document) pairs into fp32 log-odds in three steps, so that the engine can batch
across requests by token count: `encode` (tokenize, template, truncate or cut into chunks), `plan` (cut
encoded pairs into batches under a token budget, computing whatever the model needs to know about each
batch, such as shared prefixes) and `forward` (run the model on one planned batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from rerankd.config import Family


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: Family
    architecture: str
    max_length: int
    dtype: str
    device: str
    templated: bool  # True when the server applies a prompt template (clients must not)
    dtype_reason: str = ""  # why "auto" picked this dtype; for int8, whether it pays here; else empty
    warning: str | None = None  # e.g. a random-weight smoke-test model
    template: str | None = None  # the LLM reranker format (rerankd.models.families); None: cross-encoder
    weight_bytes: int = 0  # the loaded weights' memory (parameters and buffers, tied ones once); 0: unknown
    # The most characters one token of the tokenizer can stand for (its longest vocabulary entry), so
    # that character counts bound token counts before anything is tokenized; None: unknown.
    max_token_chars: int | None = None


@dataclass(frozen=True)
class EncodedPair:
    """One pair ready for the model. `token_type_ids` only for models that use them."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None
    truncated: bool = False
    sent_tokens: int | None = None  # when `truncated`: the pair's length before the cut, if known
    # Leading tokens fixed by the template, instruction and query alone (the document starts after them);
    # set only by a batch-invariant scorer, which splits every pair there (models/invariant.py).
    query_tokens: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


class PrefixGroup(NamedTuple):
    """Members (positions in their batch) that share their first `length` token ids; 0: nothing shared."""

    length: int
    members: list[int]


@dataclass(frozen=True)
class PlannedBatch:
    """One batch of a plan: which of the planned pairs it holds (`indices`, positions in the sequence
    handed to `plan`), the pairs themselves, and what the planner computed for `forward` to reuse:
    `groups`, the shared-prefix groups (positions in `pairs`), empty when nothing is shared."""

    indices: tuple[int, ...]
    pairs: tuple[EncodedPair, ...]
    groups: tuple[PrefixGroup, ...] = ()

    @classmethod
    def of(cls, pairs: Sequence[EncodedPair]) -> PlannedBatch:
        """All of `pairs` as one batch that shares nothing: valid input to any scorer's `forward`."""
        return cls(tuple(range(len(pairs))), tuple(pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def padded_tokens(self) -> int:
        """Rows times the longest row: what the batch costs without prefix sharing."""
        return max((len(p) for p in self.pairs), default=0) * len(self.pairs)


class Scorer(Protocol):
    """A scoring backend. `encode` and `encode_chunks` tokenize, template and fit a pair to the model
    (the caller never needs the tokenizer); `plan` cuts encoded pairs into batches and `forward` scores
    one of them, reusing what `plan` computed."""

    info: ModelInfo

    def encode(
        self,
        query: str,
        document: str,
        *,
        instruction: str | None = None,
        max_document_tokens: int | None = None,
    ) -> EncodedPair:
        """The pair as the model reads it, its body cut to `info.max_length` (never the template's tail;
        sets `truncated`). `max_document_tokens` first cuts the document to that many of its own tokens,
        on a token boundary (a requested cut: it does not set `truncated`)."""
        ...

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
        """Up to `max_chunks` pairs, one per window of `chunk_tokens` document tokens, consecutive windows
        sharing `overlap_tokens`; a document that fits one window is one pair."""
        ...

    def room(self, query: str, instruction: str | None = None) -> int:
        """Tokens left for a document once the template, instruction and query are in."""
        ...

    def windows(
        self, document: str, *, window_tokens: int, overlap_tokens: int, max_tokens: int
    ) -> list[tuple[int, int]]:
        """Code-point ranges into `document` of windows of `window_tokens` of its own tokens over its
        first `max_tokens`, consecutive ones sharing `overlap_tokens` (relevant spans)."""
        ...

    def plan(
        self, encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
    ) -> list[PlannedBatch]:
        """Every pair in exactly one batch, each batch within the token budget (a pair longer than the
        budget gets a batch of its own) and at most `max_batch_size` pairs."""
        ...

    def forward(self, batch: PlannedBatch) -> list[float]:
        """Log-odds (fp32) for one planned batch, in the batch's order."""
        ...


def sigmoid(x: float) -> float:
    """Numerically stable logistic; log-odds → probability."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def plan_batches(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Group item indices into batches under a padded-token budget, longest first.

    Sorting by length keeps padding small; the padded cost of a batch is its longest item times its
    size. An item longer than the budget still gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # current[0] is the batch's longest item, so it sets the padded width.
        if current and (
            lengths[current[0]] * (len(current) + 1) > max_batch_tokens or len(current) >= max_batch_size
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def plan_by_length(
    encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
) -> list[PlannedBatch]:
    """`plan` for a scorer that shares nothing between pairs: `plan_batches` on their lengths."""
    return [
        PlannedBatch(tuple(b), tuple(encoded[i] for i in b))
        for b in plan_batches([len(e) for e in encoded], max_batch_tokens, max_batch_size)
    ]


def score_encoded(
    scorer: Scorer, encoded: Sequence[EncodedPair], *, max_batch_tokens: int, max_batch_size: int = 256
) -> list[float]:
    """Log-odds for any number of encoded pairs, in input order, batched under a token budget."""
    logits = [0.0] * len(encoded)
    for batch in scorer.plan(encoded, max_batch_tokens, max_batch_size):
        for i, value in zip(batch.indices, scorer.forward(batch), strict=True):
            logits[i] = value
    return logits
