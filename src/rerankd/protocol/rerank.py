"""The rerank operation's wire models: one request superset of Cohere v1/v2, Jina, SiliconFlow, vLLM and
TEI, and the answers (the superset response, TEI's bare array)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from rerankd.errors import InvalidRequest
from rerankd.protocol.common import (
    API_VERSION,
    _known_names,
    _Lenient,
    _model_maximum,
    _positive_or_null,
    content_texts,
)
from rerankd.spans import DEFAULT_MAX_SPANS, DEFAULT_SPAN_TOKENS, MAX_SPANS, MIN_SPAN_TOKENS
from rerankd.spans import validate as validate_spans


class RerankRequest(_Lenient):
    """POST /v1/rerank, /v2/rerank and /rerank. `texts` instead of `documents` is TEI's dialect."""

    model: str | None = None
    query: str
    documents: list[str | dict[str, Any]] | None = None
    texts: list[str] | None = Field(
        default=None, description="TEI: the documents; the answer is TEI's bare array."
    )
    top_n: int | None = Field(default=None, description="Keep the best n; absent or null means all.")
    return_documents: bool | None = Field(
        default=None,
        description="Echo each document as {text} (or the object sent); default true, as vLLM and Jina.",
    )
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
    return_spans: bool | None = Field(
        default=None,
        description="Each result also carries `spans`: the passages of the document that made it "
        "relevant, best first (not in TEI's bare array, which has no slot for them).",
    )
    max_spans: int | None = Field(
        default=None,
        description=f"With return_spans: at most n spans per result (1 to {MAX_SPANS}; default {DEFAULT_MAX_SPANS}).",
    )
    span_tokens: int | None = Field(
        default=None,
        description=f"With return_spans: the window of document tokens spans are found with "
        f"(at least {MIN_SPAN_TOKENS}; default {DEFAULT_SPAN_TOKENS}, or the room the query leaves if less).",
    )

    @field_validator("top_n", mode="before")
    @classmethod
    def _top_n(cls, v: Any) -> Any:
        return None if v == 0 and not isinstance(v, bool) else v  # vLLM sends 0 for "all"

    @field_validator("documents", mode="before")
    @classmethod
    def _documents(cls, v: Any) -> Any:
        # vLLM's ScoreMultiModalParam ({"content": [text parts]}); a Cohere/Jina object stays an object.
        if isinstance(v, dict) and "content" in v:
            return content_texts(v)
        return v

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
    def _span_options(self) -> RerankRequest:
        try:
            validate_spans(self.max_spans, self.span_tokens)
        except InvalidRequest as e:
            raise ValueError(e.message) from None
        return self

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
        """vLLM and Jina always echo the document (vLLM's RerankResult requires it): echoed unless
        `return_documents: false`. TEI's bare array keeps `text` only with `return_text`."""
        return bool(self.return_text) if self.is_tei else self.return_documents is not False

    def items(self) -> list[str | dict[str, Any]]:
        return list(self.texts if self.texts is not None else self.documents or [])

    _ignored: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _note_ignored(cls, data: Any, handler: Any) -> Any:
        """Unknown fields are ignored (a superset of dialects), and the answer's meta.warnings says which."""
        obj = handler(data)
        if isinstance(data, dict):
            obj._ignored = sorted(str(k) for k in data if k not in _known_names(cls))
        return obj

    @property
    def ignored_fields(self) -> list[str]:
        return list(self._ignored)


class ResultDocument(_Lenient):
    model_config = ConfigDict(extra="allow")
    text: str


class SpanOut(BaseModel):
    """A relevant passage: `document_text[start:end] == text`, offsets in Unicode code points of the
    text as sent; `score` is that text's own score as a document (same scale as relevance_score)."""

    start: int
    end: int
    score: float
    text: str


class RerankResultItem(BaseModel):
    index: int
    relevance_score: float
    document: ResultDocument | None = None
    spans: list[SpanOut] | None = Field(
        default=None, description="With return_spans: the document's relevant spans, best first."
    )


class UsageOut(BaseModel):
    prompt_tokens: int
    total_tokens: int


class ApiVersion(BaseModel):
    version: str = API_VERSION


class BilledUnits(BaseModel):
    search_units: int


class DocumentWarning(BaseModel):
    """What the server did to one document (or the request: `index` null) that the client should know."""

    index: int | None = Field(description="The document's index in the request; null for the request.")
    code: Literal["truncated", "chunked", "ignored_field"]
    message: str


class Meta(BaseModel):
    api_version: ApiVersion = Field(default_factory=ApiVersion)
    billed_units: BilledUnits
    warnings: list[DocumentWarning] = Field(
        default_factory=list,
        description="Cohere's meta.warnings slot, machine-readable: documents truncated or chunked, "
        "request fields this server ignores.",
    )


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


# vLLM's score request shapes (ScoreTextRequest, ScoreQueriesDocumentsRequest, ScoreQueriesItemsRequest,
# ScoreDataRequest): the names of the left and the right side, in the order they are looked up.
