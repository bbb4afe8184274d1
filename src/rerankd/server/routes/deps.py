"""What the routes share: their dependencies (as Annotated aliases) and the JSON answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from pydantic import BaseModel, TypeAdapter

from rerankd.server.serving import ServingRerank, ServingScore
from rerankd.server.state import ServerState


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.rerankd
    return state


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _serving_rerank(request: Request) -> ServingRerank:
    serving: ServingRerank = request.app.state.serving_rerank
    return serving


def _serving_score(request: Request) -> ServingScore:
    serving: ServingScore = request.app.state.serving_score
    return serving


State = Annotated[ServerState, Depends(_state)]
RequestId = Annotated[str, Depends(_request_id)]
RerankService = Annotated[ServingRerank, Depends(_serving_rerank)]
ScoreService = Annotated[ServingScore, Depends(_serving_score)]

_ANY = TypeAdapter(Any)


def json_answer(answer: BaseModel | list[Any], status_code: int = 200) -> Response:
    """The answer serialized once, fields that are None left out (Cohere omits `document` unless
    asked, TEI `text`). The route's response_model documents it; it is not validated a second time."""
    if isinstance(answer, BaseModel):
        body = answer.model_dump_json(exclude_none=True)
    else:
        body = _ANY.dump_json(answer, exclude_none=True).decode()
    return Response(body, status_code=status_code, media_type="application/json")
