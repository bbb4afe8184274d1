"""Model cards, health and readiness, and the error bodies (rerankd's, and TEI's on its route)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    Field,
)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rerankd"
    max_model_len: int
    family: str
    template: str | None = Field(default=None, description="The LLM reranker's prompt format, if any.")
    templated: bool = Field(
        description="True: the server applies the prompt template; clients send raw text."
    )
    instruction: str | None = None
    dtype: str
    dtype_reason: str | None = Field(default=None, description='Why dtype "auto" picked this dtype.')
    device: str
    weight_bytes: int | None = Field(
        default=None, description="Memory the loaded weights take, in bytes (parameters and buffers)."
    )
    warning: str | None = Field(default=None, description="Set for a random-weight smoke-test model.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """200 with status "ready" once the model is loaded and warmed up; 503 with the phase otherwise."""

    status: Literal["ready", "loading", "draining", "failed"]
    model: str | None = Field(default=None, description="The served model's name, once ready.")
    error: str | None = Field(default=None, description="Why loading failed (status failed).")


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | int | None = None


class ErrorResponse(BaseModel):
    """One error body every client reads: OpenAI/vLLM (`error`), Cohere/Jina (`message`), FastAPI (`detail`)."""

    error: ErrorDetail
    message: str
    detail: str

    @classmethod
    def make(cls, message: str, type_: str, code: str | int | None = None) -> ErrorResponse:
        return cls(error=ErrorDetail(message=message, type=type_, code=code), message=message, detail=message)


TEIErrorType = Literal["Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"]


class TEIErrorResponse(BaseModel):
    """TEI's error body (router/src/http/types.rs `ErrorResponse`), sent on /rerank for a `texts` body."""

    error: str
    error_type: TEIErrorType
