"""The Scorer protocol every backend implements, and what it says about itself (ModelInfo).

A scorer turns (query, document) pairs into fp32 log-odds in two steps, so that the engine can batch
across requests by token count: `encode` (tokenize, template, truncate) and `forward` (run the model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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


@dataclass(frozen=True)
class EncodedPair:
    """One pair ready for the model. `token_type_ids` only for models that use them."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None
    truncated: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class PlannedBatch:
    """One forward pass as the scorer planned it: the pairs' indices (into the list given to `plan`) and
    whatever the plan worked out for them (for the yes/no scorer, the shared-prefix groups), so that
    `forward` never computes it again. `groups` is the scorer's own business; None means "none"."""

    indices: list[int]
    groups: object | None = None


class Scorer(Protocol):
    """A scoring backend: tokenize and template (`encode`, `encode_chunks`), group pairs into forward passes
    under a token budget (`plan`), run one pass (`forward`). All log-odds are fp32."""

    info: ModelInfo

    def encode(
        self,
        query: str,
        document: str,
        *,
        instruction: str | None = None,
        max_document_tokens: int | None = None,
    ) -> EncodedPair:
        """One pair ready for the model; the document is cut to `max_document_tokens` first when given, and
        the whole body is then cut to the model's length (never the template's tail)."""
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
        """The document as up to `max_chunks` overlapping windows of `chunk_tokens`, each one pair."""
        ...

    def room(self, query: str, instruction: str | None = None) -> int:
        """Tokens left for a document once the template, instruction and query are in."""
        ...

    def plan(self, encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int) -> list[PlannedBatch]:
        """Batches covering every index once, each within the token budget (an over-long pair alone)."""
        ...

    def forward(self, batch: Sequence[EncodedPair], groups: object | None = None) -> list[float]:
        """Log-odds (fp32) for one batch, in batch order; `groups` is what `plan` put in its PlannedBatch."""
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


def score_encoded(
    scorer: Scorer, encoded: Sequence[EncodedPair], *, max_batch_tokens: int, max_batch_size: int = 256
) -> list[float]:
    """Log-odds for any number of encoded pairs, in input order, batched under a token budget."""
    logits = [0.0] * len(encoded)
    # A scorer may plan its own batches (the yes/no scorer counts a shared prefix once).
    planner = getattr(scorer, "plan", None)
    if callable(planner):
        batches = planner(encoded, max_batch_tokens, max_batch_size)
    else:
        batches = plan_batches([len(e) for e in encoded], max_batch_tokens, max_batch_size)
    for batch in batches:
        for i, value in zip(batch, scorer.forward([encoded[i] for i in batch]), strict=True):
            logits[i] = value
    return logits
