"""Wire models for every rerank dialect rerankd speaks, in one place.

One request model per operation is a superset of the dialects (Cohere v1/v2, Jina, SiliconFlow, vLLM,
TEI): every optional field takes null, unknown fields are ignored, and the answer is a superset every
client reads. Pure pydantic: no torch, no FastAPI, so the client can share it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION = "2"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def document_text(doc: str | dict[str, Any], rank_fields: list[str] | None = None) -> str:
    """The text a document object is ranked on: its `text`, or Cohere's `rank_fields` as 'key: value'
    lines, or (no text, no rank_fields) every string field in that form."""
    if isinstance(doc, str):
        return doc
    if rank_fields:
        missing = [f for f in rank_fields if f not in doc]
        if missing:
            raise ValueError(f"rank_fields {missing} are missing from a document with fields {sorted(doc)}")
        return "\n".join(f"{f}: {doc[f]}" for f in rank_fields)
    if isinstance(doc.get("text"), str):
        return str(doc["text"])
    fields = [
        f"{k}: {v}" for k, v in doc.items() if isinstance(v, str | int | float) and not isinstance(v, bool)
    ]
    if not fields:
        raise ValueError('a document object needs a "text" field (or pass rank_fields)')
    return "\n".join(fields)


def _positive_or_null(v: int | None, info: Any) -> int | None:
    if v is not None and v < 1:
        raise ValueError(f"{info.field_name} must be a positive integer or null, got {v}")
    return v


def _model_maximum(v: Any) -> Any:
    return None if v == -1 else v  # vLLM: -1 means "the model's maximum", which truncation does anyway


class RerankRequest(_Lenient):
    """POST /v1/rerank, /v2/rerank and /rerank. `texts` instead of `documents` is TEI's dialect."""

    model: str | None = None
    query: str
    documents: list[str | dict[str, Any]] | None = None
    texts: list[str] | None = Field(
        default=None, description="TEI: the documents; the answer is TEI's bare array."
    )
    top_n: int | None = Field(default=None, description="Keep the best n; absent or null means all.")
    return_documents: bool | None = None
    return_text: bool | None = Field(default=None, description="TEI: include each text in the answer.")
    rank_fields: list[str] | None = Field(
        default=None, description="Cohere v1: the fields of document objects to rank on."
    )
    max_chunks_per_doc: int | None = Field(
        default=None,
        description="Split long documents into up to n overlapping chunks; a document scores its best chunk.",
    )
    overlap_tokens: int | None = Field(default=None, description="Tokens shared by consecutive chunks.")
    max_tokens_per_doc: int | None = Field(
        default=None, description="Cohere v2: truncate each document to n tokens."
    )
    instruction: str | None = Field(
        default=None, description="Task instruction for yes/no rerankers; default: the server's."
    )
    raw_scores: bool | None = Field(
        default=None, description="TEI: return log-odds instead of probabilities."
    )
    use_activation: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("use_activation", "activation"),
        description="vLLM: false returns log-odds.",
    )
    truncate: bool | None = Field(
        default=None, description="TEI: false rejects inputs that would be truncated."
    )
    truncate_prompt_tokens: int | None = Field(
        default=None, description="vLLM: truncate each document to n tokens."
    )

    @field_validator("top_n", mode="before")
    @classmethod
    def _top_n(cls, v: Any) -> Any:
        return None if v == 0 and not isinstance(v, bool) else v  # vLLM sends 0 for "all"

    _truncate = field_validator("truncate_prompt_tokens", mode="before")(_model_maximum)
    _positive = field_validator(
        "top_n", "max_chunks_per_doc", "max_tokens_per_doc", "truncate_prompt_tokens"
    )(_positive_or_null)

    @field_validator("overlap_tokens")
    @classmethod
    def _non_negative(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError(f"overlap_tokens must be >= 0, got {v}")
        return v

    @model_validator(mode="after")
    def _one_document_list(self) -> RerankRequest:
        if self.documents is None and self.texts is None:
            raise ValueError('send the documents to rank as "documents" (or "texts", TEI\'s name)')
        if self.documents is not None and self.texts is not None:
            raise ValueError('send either "documents" or "texts", not both')
        return self

    @property
    def is_tei(self) -> bool:
        return self.texts is not None

    @property
    def wants_raw(self) -> bool:
        return bool(self.raw_scores) or self.use_activation is False

    @property
    def wants_documents(self) -> bool:
        return bool(self.return_text) if self.is_tei else bool(self.return_documents)

    def items(self) -> list[str | dict[str, Any]]:
        return list(self.texts if self.texts is not None else self.documents or [])


class ResultDocument(_Lenient):
    model_config = ConfigDict(extra="allow")
    text: str


class RerankResultItem(BaseModel):
    index: int
    relevance_score: float
    document: ResultDocument | None = None


class UsageOut(BaseModel):
    prompt_tokens: int
    total_tokens: int


class ApiVersion(BaseModel):
    version: str = API_VERSION


class BilledUnits(BaseModel):
    search_units: int


class Meta(BaseModel):
    api_version: ApiVersion = Field(default_factory=ApiVersion)
    billed_units: BilledUnits


class Tokens(BaseModel):
    input_tokens: int
    output_tokens: int = 0


class RerankResponse(BaseModel):
    """The superset answer: Cohere (id, results, meta), Jina and vLLM (model, usage), SiliconFlow (tokens)."""

    id: str
    model: str
    results: list[RerankResultItem]
    usage: UsageOut
    meta: Meta
    tokens: Tokens


class TEIRank(BaseModel):
    index: int
    score: float
    text: str | None = None


TEIRanks = list[TEIRank]  # TEI answers a bare array, sorted by score


class ScoreRequest(_Lenient):
    """vLLM's score API: `text_1`/`text_2` (or `queries`/`documents`), one-to-one or one-to-many."""

    model: str | None = None
    text_1: str | list[str] | None = None
    text_2: str | list[str] | None = None
    queries: str | list[str] | None = None
    documents: str | list[str] | None = None
    instruction: str | None = None
    use_activation: bool | None = Field(
        default=None, validation_alias=AliasChoices("use_activation", "activation")
    )
    raw_scores: bool | None = None
    truncate_prompt_tokens: int | None = None

    _truncate = field_validator("truncate_prompt_tokens", mode="before")(_model_maximum)
    _positive = field_validator("truncate_prompt_tokens")(_positive_or_null)

    @model_validator(mode="after")
    def _pairs(self) -> ScoreRequest:
        left = self.text_1 if self.text_1 is not None else self.queries
        right = self.text_2 if self.text_2 is not None else self.documents
        if left is None or right is None:
            raise ValueError('send "text_1" and "text_2" (or "queries" and "documents")')
        if isinstance(left, list) and not isinstance(right, list):
            raise ValueError("a list of queries needs a list of documents of the same length")
        if isinstance(left, list) and isinstance(right, list) and len(left) not in (1, len(right)):
            raise ValueError(
                f"one-to-one scoring needs as many queries as documents: got {len(left)} and {len(right)}"
            )
        if isinstance(left, list) and not left:
            raise ValueError("the list of queries is empty")
        return self

    def pairs(self) -> list[tuple[str, str]]:
        left = self.text_1 if self.text_1 is not None else self.queries
        right = self.text_2 if self.text_2 is not None else self.documents
        lefts = [left] if isinstance(left, str) else list(left or [])
        rights = [right] if isinstance(right, str) else list(right or [])
        if len(lefts) == 1:
            return [(lefts[0], r) for r in rights]
        return list(zip(lefts, rights, strict=True))

    @property
    def wants_raw(self) -> bool:
        return bool(self.raw_scores) or self.use_activation is False


class ScoreData(BaseModel):
    index: int
    object: Literal["score"] = "score"
    score: float


class ScoreResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: UsageOut


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rerankd"
    max_model_len: int
    family: str
    templated: bool = Field(
        description="True: the server applies the prompt template; clients send raw text."
    )
    instruction: str | None = None
    dtype: str
    dtype_reason: str | None = Field(default=None, description='Why dtype "auto" picked this dtype.')
    device: str
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
