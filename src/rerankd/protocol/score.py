"""vLLM's score API: every request shape vLLM accepts, and its answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from rerankd.protocol.common import _Lenient, _model_maximum, _positive_or_null, content_texts
from rerankd.protocol.rerank import UsageOut

ScoreInputs = str | list[str] | dict[str, Any]  # a text, texts, or vLLM's {"content": [text parts]}

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
