"""Provider detection for `provider="auto"`: the one routine, sans I/O.

`detection_steps()` is a generator that yields the requests to make (GET /v1/models, then TEI's GET
/info when that is missing) and is sent each answer's JSON, or has the request's ClientError thrown
in; it returns the Detection. The sync and async clients only drive it with their own I/O."""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rerankd.client._dialects import Request
from rerankd.client.errors import ClientError, InvalidResponseError, NotFoundError

log = logging.getLogger("rerankd.client")

#: The wire format used when `provider="auto"` can't tell what the server is.
FALLBACK_PROVIDER = "rerankd"


@dataclass(frozen=True)
class RemoteModel:
    """A model a server lists at GET /v1/models; `raw` is the card as sent."""

    id: str
    templated: bool | None = None
    family: str | None = None
    max_model_len: int | None = None
    owned_by: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def parse_models(payload: Any) -> list[RemoteModel]:
    data = payload.get("data", payload.get("models")) if isinstance(payload, dict) else payload
    if not isinstance(data, list):
        raise InvalidResponseError(f"the model list is not a list: {str(payload)[:200]}")
    out = []
    for card in data:
        card_id = card.get("id", card.get("name")) if isinstance(card, dict) else None
        if not isinstance(card, dict) or not isinstance(card_id, str):
            raise InvalidResponseError(f"a model card has no id: {str(card)[:200]}")
        out.append(
            RemoteModel(
                id=card_id,
                templated=card["templated"] if isinstance(card.get("templated"), bool) else None,
                family=card.get("family") if isinstance(card.get("family"), str) else None,
                max_model_len=card.get("max_model_len")
                if isinstance(card.get("max_model_len"), int)
                else None,
                owned_by=card.get("owned_by") if isinstance(card.get("owned_by"), str) else None,
                raw=card,
            )
        )
    return out


@dataclass(frozen=True)
class Detection:
    provider: str
    model: str | None
    reason: str
    fallback: bool = False


def detect_provider(models: list[RemoteModel] | None, why_not: str = "") -> Detection:
    """What `provider="auto"` concludes from GET /v1/models: a card with `templated` is rerankd's,
    one owned by "vllm" is vLLM's; anything else falls back to the rerankd wire format without
    client-side templating."""
    if models:
        first = models[0]
        if any(m.templated is not None for m in models):
            return Detection("rerankd", first.id, "GET /v1/models lists a model card with 'templated'")
        if any(m.owned_by == "vllm" for m in models):
            return Detection("vllm", first.id, "GET /v1/models lists a model owned by vllm")
        why_not = why_not or "GET /v1/models does not say which server this is"
    return Detection(
        FALLBACK_PROVIDER,
        models[0].id if models else None,
        why_not or "GET /v1/models listed no model",
        fallback=True,
    )


def tei_info(payload: Any) -> Detection | None:
    """TEI answers GET /info with its model id and model type."""
    if not isinstance(payload, dict) or not isinstance(payload.get("model_type"), dict):
        return None
    if "reranker" not in payload["model_type"]:
        return None
    model = payload.get("model_id")
    return Detection("tei", model if isinstance(model, str) else None, "GET /info: a TEI reranker")


def stops_detection(error: ClientError) -> bool:
    """Errors that stop detection (and the call): auth, and no answer at all. A 404 or a 4xx
    means the server has no such route, and detection falls back."""
    return not isinstance(error, NotFoundError | InvalidResponseError) and (
        error.status is None or error.status in (401, 403) or error.status >= 500
    )


def detection_steps(base_url: str) -> Generator[Request, Any, Detection]:
    """Ask the server what it is: the requests to send, then the Detection (logged)."""
    try:
        detection = detect_provider(parse_models((yield Request("GET", "/v1/models"))))
    except ClientError as e:
        if stops_detection(e):
            raise
        why = f"GET /v1/models: {e}"
        try:
            tei = tei_info((yield Request("GET", "/info")))
        except ClientError as e2:
            if stops_detection(e2):
                raise
            tei = None
        detection = tei or detect_provider(None, why)
    if detection.fallback:
        log.warning(
            "rerankd client: could not tell which server %s is (%s); using the %r wire format without "
            "client-side templating. Pass provider=... to choose.",
            base_url,
            detection.reason,
            FALLBACK_PROVIDER,
        )
    else:
        log.info("rerankd client: %s is %s (%s)", base_url, detection.provider, detection.reason)
    return detection


__all__ = [
    "FALLBACK_PROVIDER",
    "Detection",
    "RemoteModel",
    "detect_provider",
    "detection_steps",
    "parse_models",
    "stops_detection",
    "tei_info",
]
