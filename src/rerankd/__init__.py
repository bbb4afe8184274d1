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
from rerankd.types import Document, RankedDocument, RerankResult, Usage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_INSTRUCTION",
    "Document",
    "InvalidRequest",
    "ModelLoadError",
    "Overloaded",
    "RankedDocument",
    "RerankResult",
    "RerankdError",
    "Reranker",
    "Unavailable",
    "UnsupportedModelError",
    "Usage",
    "__version__",
]
