"""What every dialect's wire models share: lenient parsing, document text, field validators."""

from __future__ import annotations

from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
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
