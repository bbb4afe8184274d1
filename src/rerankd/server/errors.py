"""Every error leaves the server through here: one status per error class, one body every client
reads ({"error": {message, type, code}, "message", "detail"}), Retry-After where a retry helps. The one
exception is TEI's route (/rerank with a `texts` body): TEI's own body and status codes, as TEI's router
(router/src/http/types.rs) sends them, so TEI's clients read rerankd's errors as their server's."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rerankd.errors import (
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    RerankdError,
    RetryableError,
    Unavailable,
)
from rerankd.protocol import ErrorResponse, TEIErrorResponse, TEIErrorType

log = logging.getLogger("rerankd.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


# TEI's status per error type (router/src/http/types.rs, `impl From<&ErrorType> for StatusCode`): TEI
# answers its own validation failures (too many texts, an input over the model with truncate false) 413;
# a body its JSON extractor refuses is axum's 422.
TEI_STATUS: dict[TEIErrorType, int] = {
    "Unhealthy": 503,
    "Backend": 424,
    "Overloaded": 429,
    "Validation": 413,
    "Tokenizer": 422,
    "Empty": 400,
}
TEI_ROUTE = "/rerank"


class NothingToRank(InvalidRequest):
    """A server request with no documents: the peers answer 4xx (the library returns an empty result)."""

    code = "empty"


_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}

# What each error status means to a caller, for the OpenAPI document; every one has the ErrorResponse body.
_MEANINGS = {
    400: "The request is invalid: a field, a limit, or a query too long for the model.",
    401: "Missing or wrong API key (`Authorization: Bearer <key>`).",
    404: "The request's `model` is not served here (a server with several models); the message lists them.",
    413: "The request body is larger than the server's limit.",
    429: "The queue is full; retry after Retry-After seconds.",
    503: "The model is loading, failed to load, or the server is shutting down; retry after Retry-After.",
}


def documented_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, plus `default` (404, 405, 500: the same body). Declaring
    them replaces FastAPI's 422 HTTPValidationError, which this server never sends (it answers 400)."""
    out: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorResponse, "description": _MEANINGS[s]} for s in statuses
    }
    out["default"] = {"model": ErrorResponse, "description": "Any other error, in the same body."}
    return out


def documented_tei_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for /rerank, where an error has rerankd's body or, for a `texts` body, TEI's."""
    meanings = {
        **_MEANINGS,
        400: _MEANINGS[400] + " TEI (`texts`): `texts` is empty (error_type Empty).",
        413: _MEANINGS[413] + " TEI (`texts`): too many texts, or an input over the model with "
        "`truncate: false`, or a limit (error_type Validation).",
        422: "TEI (`texts`): the body does not validate (error_type Validation).",
        424: "TEI (`texts`): the model failed (error_type Backend).",
    }
    both = {"model": ErrorResponse | TEIErrorResponse}
    out: dict[int | str, dict[str, Any]] = {s: {**both, "description": meanings[s]} for s in statuses}
    out["default"] = {**both, "description": "Any other error, in either body."}
    return out


def is_tei_body(path: str, body: Any) -> bool:
    return path == TEI_ROUTE and isinstance(body, dict) and "texts" in body


def tei_error_type(exc: RerankdError) -> TEIErrorType:
    if isinstance(exc, NothingToRank):
        return "Empty"
    if isinstance(exc, Overloaded):
        return "Overloaded"
    if isinstance(exc, Unavailable):
        return "Unhealthy"
    if isinstance(exc, (InvalidRequest, ModelNotFound)):
        return "Validation"
    return "Backend"


def tei_error_response(exc: RerankdError) -> JSONResponse:
    """A rerankd error in TEI's body, with TEI's status for its type (Retry-After kept: it only helps).
    An unknown model keeps its 404: TEI serves one model and has no status for it."""
    kind = tei_error_type(exc)
    headers = {"Retry-After": retry_after(exc.retry_after)} if isinstance(exc, RetryableError) else None
    body = TEIErrorResponse(error=exc.message, error_type=kind).model_dump()
    status = exc.status_code if isinstance(exc, ModelNotFound) else TEI_STATUS[kind]
    return JSONResponse(body, status_code=status, headers=headers)


def retry_after(seconds: float) -> str:
    """The Retry-After header's value: whole seconds, at least 1 (0 would invite a busy loop)."""
    return str(max(1, round(seconds)))


def error_body(status: int, message: str, code: str | int | None = None) -> ErrorResponse:
    return ErrorResponse.make(
        message, _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error"), code
    )


def error_response(
    status: int, message: str, code: str | int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code).model_dump(), status_code=status, headers=headers)


def describe_validation(errors: Any) -> str:
    """Pydantic's errors as one sentence naming each field: 'query: Field required; top_n: ...'."""
    parts = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "json_invalid":
            msg = f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})"
            loc = []
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(RerankdError)
    async def _rerankd(request: Request, exc: RerankdError) -> JSONResponse:
        if exc.status_code == 500:
            log.error("%s: %s", exc.code, exc.message)
        if getattr(request.state, "tei", False):  # set by the /rerank route for a `texts` body
            return tei_error_response(exc)
        headers = None
        if isinstance(exc, RetryableError):
            headers = {"Retry-After": retry_after(exc.retry_after)}
        return error_response(exc.status_code, exc.message, exc.code, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = describe_validation(exc.errors())
        if is_tei_body(request.url.path, exc.body):
            body = TEIErrorResponse(error=message, error_type="Validation").model_dump()
            return JSONResponse(body, status_code=422)
        return error_response(400, message, "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # `code` is always a string, like every other error's (a client switches on one type).
        code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, str(exc.detail), code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type and the route only: a traceback would print the request's texts (pydantic's
        # input_value=...), and the log must never hold documents or queries.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")
