"""Wire models for every rerank dialect rerankd speaks, in one place.

One request model per operation is a superset of the dialects (Cohere v1/v2, Jina, SiliconFlow, vLLM,
TEI): every optional field takes null, unknown fields are ignored, and the answer is a superset every
client reads. Pure pydantic: no torch, no FastAPI, so the client can share it.
"""

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


def content_texts(value: Any) -> Any:
    """vLLM's ScoreMultiModalParam ({"content": [parts]}) and content parts ({"type": "text", "text"})
    as plain strings: rerankd scores text, so any other part is refused with a message that says so."""

    def part(p: Any) -> Any:
        if isinstance(p, dict) and "type" in p:
            if p.get("type") == "text" and isinstance(p.get("text"), str):
                return p["text"]
            raise ValueError(f'this server scores text only: a content part of type "{p.get("type")}"')
        return p

    if isinstance(value, dict) and isinstance(value.get("content"), list):
        return [part(p) for p in value["content"]]
    if isinstance(value, list):
        return [part(p) for p in value]
    return part(value)


def _known_names(model: type[BaseModel]) -> set[str]:
    names = set(model.model_fields)
    for f in model.model_fields.values():
        alias = f.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias)
        if f.alias:
            names.add(f.alias)
    return names


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


ScoreInputs = str | list[str] | dict[str, Any]  # a text, texts, or vLLM's {"content": [text parts]}

# vLLM's score request shapes (ScoreTextRequest, ScoreQueriesDocumentsRequest, ScoreQueriesItemsRequest,
# ScoreDataRequest): the names of the left and the right side, in the order they are looked up.
SCORE_SHAPES = [("text_1", "text_2"), ("queries", "documents"), ("queries", "items"), ("data_1", "data_2")]


class ScoreRequest(_Lenient):
    """vLLM's score API in each of its request shapes: `text_1`/`text_2`, `queries` with `documents` or
    `items`, `data_1`/`data_2`. vLLM's broadcast: 1 left vs N right, or N vs N pairwise."""

    model: str | None = None
    text_1: ScoreInputs | None = None
    text_2: ScoreInputs | None = None
    queries: ScoreInputs | None = None
    documents: ScoreInputs | None = None
    items: ScoreInputs | None = Field(default=None, description="vLLM: the right side, as `documents`.")
    data_1: ScoreInputs | None = Field(default=None, description="vLLM ScoreDataRequest: the left side.")
    data_2: ScoreInputs | None = Field(default=None, description="vLLM ScoreDataRequest: the right side.")
    instruction: str | None = None
    use_activation: bool | None = Field(
        default=None, validation_alias=AliasChoices("use_activation", "activation")
    )
    raw_scores: bool | None = None
    truncate_prompt_tokens: int | None = None

    _truncate = field_validator("truncate_prompt_tokens", mode="before")(_model_maximum)
    _positive = field_validator("truncate_prompt_tokens")(_positive_or_null)
    _content = field_validator(
        "text_1", "text_2", "queries", "documents", "items", "data_1", "data_2", mode="before"
    )(content_texts)

    def sides(self) -> tuple[list[str], list[str]]:
        """The left and right texts of the first complete shape, each a list (a string is one text)."""
        for left_name, right_name in SCORE_SHAPES:
            left, right = getattr(self, left_name), getattr(self, right_name)
            if left is not None and right is not None:
                return _texts(left_name, left), _texts(right_name, right)
        raise ValueError(
            'send "text_1" and "text_2" (or "queries" with "documents" or "items", or "data_1" and "data_2")'
        )

    @model_validator(mode="after")
    def _pairs(self) -> ScoreRequest:
        lefts, rights = self.sides()
        # vLLM's _validate_score_input_lens, its messages included.
        if len(lefts) > 1 and len(lefts) != len(rights):
            raise ValueError(
                f"Input lengths must be either 1:1, 1:N or N:N (got {len(lefts)} and {len(rights)})"
            )
        if not lefts:
            raise ValueError("At least one text element must be given")
        if not rights:
            raise ValueError("At least one text_pair element must be given")
        return self

    def pairs(self) -> list[tuple[str, str]]:
        lefts, rights = self.sides()
        if len(lefts) == 1:
            return [(lefts[0], r) for r in rights]
        return list(zip(lefts, rights, strict=True))

    @property
    def wants_raw(self) -> bool:
        return bool(self.raw_scores) or self.use_activation is False


def _texts(name: str, value: str | list[str] | dict[str, Any]) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f'{name}: send a string, a list of strings, or {{"content": [text parts]}}')


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
    template: str | None = Field(default=None, description="The LLM reranker's prompt format, if any.")
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


TEIErrorType = Literal["Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"]


class TEIErrorResponse(BaseModel):
    """TEI's error body (router/src/http/types.rs `ErrorResponse`), sent on /rerank for a `texts` body."""

    error: str
    error_type: TEIErrorType
