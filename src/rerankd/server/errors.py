"""Every error leaves the server through here: one status per error class, one body every client
reads ({"error": {message, type, code}, "message", "detail"}), Retry-After where a retry helps."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rerankd.errors import Overloaded, RerankdError, Unavailable
from rerankd.protocol import ErrorResponse

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
    async def _rerankd(_: Request, exc: RerankdError) -> JSONResponse:
        headers = None
        if isinstance(exc, Overloaded | Unavailable):
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        if exc.status_code == 500:
            log.error("%s: %s", exc.code, exc.message)
        return error_response(exc.status_code, exc.message, exc.code, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, describe_validation(exc.errors()), "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, str(exc.detail), exc.status_code, getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")
