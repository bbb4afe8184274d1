"""Wire models for every rerank dialect rerankd speaks: one import path, one module per operation.

One request model per operation is a superset of the dialects (Cohere v1/v2, Jina, SiliconFlow, vLLM,
TEI): every optional field takes null, unknown fields are ignored, and the answer is a superset every
client reads. Pure pydantic: no torch, no FastAPI, so the client can share it.
"""

from __future__ import annotations

from rerankd.protocol.common import (
    API_VERSION,
    content_texts,
    document_text,
)
from rerankd.protocol.rerank import (
    ApiVersion,
    BilledUnits,
    DocumentWarning,
    Meta,
    RerankRequest,
    RerankResponse,
    RerankResultItem,
    ResultDocument,
    SpanOut,
    TEIRank,
    TEIRanks,
    Tokens,
    UsageOut,
)
from rerankd.protocol.score import (
    SCORE_SHAPES,
    ScoreData,
    ScoreInputs,
    ScoreRequest,
    ScoreResponse,
)
from rerankd.protocol.system import (
    ErrorDetail,
    ErrorResponse,
    HealthResponse,
    ModelCard,
    ModelList,
    ReadyResponse,
    TEIErrorResponse,
    TEIErrorType,
)

__all__ = [
    "API_VERSION",
    "SCORE_SHAPES",
    "ApiVersion",
    "BilledUnits",
    "DocumentWarning",
    "ErrorDetail",
    "ErrorResponse",
    "HealthResponse",
    "Meta",
    "ModelCard",
    "ModelList",
    "ReadyResponse",
    "RerankRequest",
    "RerankResponse",
    "RerankResultItem",
    "ResultDocument",
    "ScoreData",
    "ScoreInputs",
    "ScoreRequest",
    "ScoreResponse",
    "SpanOut",
    "TEIErrorResponse",
    "TEIErrorType",
    "TEIRank",
    "TEIRanks",
    "Tokens",
    "UsageOut",
    "content_texts",
    "document_text",
]
