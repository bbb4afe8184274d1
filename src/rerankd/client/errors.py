"""The client's typed errors: one class per way a call can fail, all under `ClientError(RerankdError)`.

`ConnectionError` and `TimeoutError` are named after the builtins on purpose and also subclass them, so
`except TimeoutError` (the builtin) still catches a client timeout; import them from this module (or use
the aliases `APIConnectionError` / `APITimeoutError`) to keep the builtins unshadowed in your own code.

Every error carries `status` (the HTTP status, or None when no answer came), `message` (the server's own
words when it sent any), `request_id` (the server's `x-request-id`, or the id the client sent), `code`
(the server's machine-readable code, when given), `retryable` and, for 429/503, `retry_after` (seconds).
"""

from __future__ import annotations

import builtins
import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import Any

from rerankd.errors import RerankdError

__all__ = [
    "RETRYABLE_STATUS",
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientError",
    "ConnectionError",
    "InvalidResponseError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "TimeoutError",
    "error_from_response",
    "error_from_transport",
    "message_of",
    "parse_retry_after",
]


class ClientError(RerankdError):
    """Base of every error the client raises."""

    code = "client_error"
    #: Whether the retry policy may try the same request again.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        code: str | int | None = None,
        retry_after: float | None = None,
        url: str | None = None,
        attempts: int = 1,
    ) -> None:
        parts = [f"{status}" if status is not None else None, message]
        head = ": ".join(p for p in parts if p)
        tail = f" (request id {request_id})" if request_id else ""
        super().__init__(head + tail)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.server_code = code
        self.retry_after = retry_after
        self.url = url
        self.attempts = attempts


class AuthenticationError(ClientError):
    """401/403: a missing or wrong API key. Never retried."""

    code = "authentication_error"


class BadRequestError(ClientError):
    """A 4xx the same request can't cure (400, 404, 413, 422...), or a call the client refuses to send."""

    code = "bad_request"


class NotFoundError(BadRequestError):
    """404: the URL has no such route (a wrong base URL or provider?)."""

    code = "not_found"


class RateLimitError(ClientError):
    """429 after the retries: the server (or the provider's quota) wants fewer requests."""

    code = "rate_limit_error"
    retryable = True


class ServerError(ClientError):
    """5xx after the retries."""

    code = "server_error"
    retryable = True


class ConnectionError(ClientError, builtins.ConnectionError):
    """No answer: the connection was refused, reset or closed before the server answered."""

    code = "connection_error"
    retryable = True


class TimeoutError(ClientError, builtins.TimeoutError):
    """No answer within `timeout` (or a 408), or the total `deadline` ran out."""

    code = "timeout"
    retryable = True


class InvalidResponseError(ClientError):
    """A 2xx whose body is not a rerank answer: not JSON, no results, missing or out-of-range indices."""

    code = "invalid_response"


APIConnectionError = ConnectionError
APITimeoutError = TimeoutError


# ----------------------------------------------------------------------------------------------------
# From the wire to a typed error

RETRYABLE_STATUS = frozenset({408, 409, 429})


def message_of(body: Any) -> tuple[str | None, str | int | None]:
    """The message and code of an error body in any of the common shapes."""
    if not isinstance(body, dict):
        return None, None
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"], err.get("code") if err.get("code") is not None else err.get("type")
    if isinstance(err, str):
        return err, body.get("code")
    for key in ("message", "detail"):
        value = body.get(key)
        if isinstance(value, str):
            return value, body.get("code")
        if isinstance(value, list):  # FastAPI's validation errors
            return "; ".join(str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value), None
    return None, None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date; None if
    absent or unreadable. `now` is the wall clock (time.time()) an HTTP date is measured from."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
        return max(0.0, value) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # pragma: no cover - older Pythons
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _class_of(status: int) -> type[ClientError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status == 408:
        return TimeoutError
    if status == 429:
        return RateLimitError
    return ServerError if status >= 500 else BadRequestError


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    sent_request_id: str | None = None,
    url: str | None = None,
    reason: str = "",
    now: float | None = None,
) -> ClientError:
    """The typed error for a non-2xx answer, with the server's message, code and request id."""
    body: Any = None
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    message, code = message_of(body)
    if message is None:
        text = content.decode("utf-8", "replace").strip()
        message = text[:500] if text else (reason or "no message")
    lower = {k.lower(): v for k, v in headers.items()}
    request_id = lower.get("x-request-id") or (
        body.get("id") if isinstance(body, dict) and isinstance(body.get("id"), str) else None
    )
    error = _class_of(status)(
        message,
        status=status,
        request_id=request_id or sent_request_id,
        code=code,
        retry_after=parse_retry_after(headers, now),
        url=url,
    )
    error.retryable = status in RETRYABLE_STATUS or status >= 500
    return error


def error_from_transport(exc: BaseException, *, url: str | None, request_id: str | None) -> ClientError:
    """A ConnectionError or TimeoutError for an exception raised by the transport (httpx)."""
    import httpx

    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        err: ClientError = TimeoutError(f"no answer in time ({detail})", request_id=request_id, url=url)
    else:
        err = ConnectionError(f"no answer: {detail}", request_id=request_id, url=url)
    err.__cause__ = exc
    return err
