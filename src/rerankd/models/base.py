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


class Scorer(Protocol):
    """A scoring backend: `encode` (tokenize, template, truncate) and `forward` (one batch → fp32 log-odds).
    A scorer may also have `plan(encoded, max_batch_tokens, max_batch_size)` (the yes/no scorer counts a
    shared prefix once); `score_encoded` and the engine use it when present."""

    info: ModelInfo

    def encode(self, query: str, document: str, *, instruction: str | None = None) -> EncodedPair: ...

    def forward(self, batch: Sequence[EncodedPair]) -> list[float]:
        """Log-odds (fp32) for one batch, in batch order. The caller bounds the batch's size."""
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
