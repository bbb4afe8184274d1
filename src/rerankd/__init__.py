"""rerankd: exact and fast reranking for LLM rerankers (Qwen3-Reranker) and cross-encoders.

`from rerankd import Reranker` stays light: torch and transformers load on first use of a model.
"""

from rerankd.errors import (
    InvalidRequest,
    ModelLoadError,
    Overloaded,
    RerankdError,
    Unavailable,
    UnsupportedModelError,
)
from rerankd.reranker import Reranker
from rerankd.templates import DEFAULT_INSTRUCTION
from rerankd.types import Document, RankedDocument, RerankResult, Span, Usage

__version__ = "0.1.0"

_LAZY = {
    "RerankClient": "rerankd.client",
    "AsyncRerankClient": "rerankd.client",
    "RateLimit": "rerankd.client",
}


def __getattr__(name: str) -> object:
    # The client loads on first use, so `import rerankd` stays light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rerankd' has no attribute {name!r}")


__all__ = [  # noqa: RUF022
    "AsyncRerankClient",
    "DEFAULT_INSTRUCTION",
    "Document",
    "InvalidRequest",
    "ModelLoadError",
    "Overloaded",
    "RankedDocument",
    "RateLimit",
    "RerankClient",
    "RerankResult",
    "RerankdError",
    "Reranker",
    "Span",
    "Unavailable",
    "UnsupportedModelError",
    "Usage",
    "__version__",
]
