"""One config: what model to load and how to batch it. Every default is stated here, once; the library,
the CLI, the server, eval, batch, Ray and bench all build these two objects and load through
`load_scorer` (here) or `rerankd.reranker.load_reranker`.

This module imports nothing heavy: the loaders import `rerankd.models` (torch) only when called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rerankd.models.base import Scorer

Family = Literal["yes_no", "cross_encoder"]

DEFAULT_MODEL = "Qwen/Qwen3-Reranker-0.6B"
DEFAULT_MAX_LENGTH = 8192
DEFAULT_MAX_BATCH_TOKENS = 8192
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_QUEUE = 4096  # pairs waiting or being scored, across requests
DEFAULT_SCORE_CACHE = 0  # off: a cache trades memory for repeated pairs, which not every load has
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16", "int8")
DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class ModelConfig:
    """Which model, where, and in what precision. `family` overrides the detection from the config."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    max_length: int = DEFAULT_MAX_LENGTH
    instruction: str | None = None
    family: Family | None = None
    template: str | None = None  # an LLM reranker format (models/families.py); None: recognised
    trust_remote_code: bool = False
    served_name: str | None = None  # the name clients see; the model id or path when None
    # Scores bitwise independent of what else is batched (causal LMs; models/invariant.py).
    batch_invariant: bool = False

    @property
    def name(self) -> str:
        return self.served_name or self.model


@dataclass(frozen=True)
class BatchConfig:
    """How pairs are grouped into forward passes, and how many may wait."""

    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_queue: int = DEFAULT_MAX_QUEUE
    score_cache: int = DEFAULT_SCORE_CACHE  # pairs whose scores are kept (LRU); 0: no cache


# A random-weight smoke-test model (rerankd.smoke) carries this file; loading labels it with the warning.
SMOKE_MARKER = "rerankd-smoke-test.json"
SMOKE_WARNING = (
    "tiny-random is a random-weight smoke-test model: its scores are random and mean nothing. "
    "It is NOT a real reranker; use --model Qwen/Qwen3-Reranker-0.6B for real rankings"
)


def load_scorer(config: ModelConfig) -> Scorer:
    """The model loaded (blocking) and wrapped in the scorer for its family."""
    from rerankd.models.loading import load_scorer as _load

    return _load(
        config.model,
        device=config.device,
        dtype=config.dtype,
        max_length=config.max_length,
        family=config.family,
        template=config.template,
        trust_remote_code=config.trust_remote_code,
        batch_invariant=config.batch_invariant,
    )
