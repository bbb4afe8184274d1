"""text-embeddings-inference's (TEI) rerank request, response and error types, as pydantic models.

Source: https://github.com/huggingface/text-embeddings-inference, `router/src/http/types.rs` (RerankRequest,
Rank, RerankResponse, ErrorType, ErrorResponse) and `router/src/http/server.rs` (`impl From<&ErrorType> for
StatusCode`, the `/rerank` handler's checks). Licence: Apache-2.0 (Copyright Hugging Face).

Transcribed from Rust serde structs: `#[serde(default)]` fields have their defaults, `Option<T>` is
`T | None`, the `#[serde(tag)]`-less `ErrorType` enum is a Literal of its variant names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, RootModel

ErrorType = Literal["Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"]

# server.rs: impl From<&ErrorType> for StatusCode.
STATUS: dict[str, int] = {
    "Unhealthy": 503,
    "Backend": 424,
    "Overloaded": 429,
    "Validation": 413,
    "Tokenizer": 422,
    "Empty": 400,
}


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # serde ignores fields a struct does not name

    query: str
    texts: list[str]
    truncate: bool | None = None
    truncation_direction: Literal["Left", "Right"] = "Right"
    raw_scores: bool = False
    return_text: bool = False


class Rank(BaseModel):
    model_config = ConfigDict(extra="forbid")  # TEI sends exactly these fields

    index: int
    text: str | None = None
    score: float


class RerankResponse(RootModel[list[Rank]]):
    pass


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: str
    error_type: ErrorType
