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

from rerankd.errors import RerankdError

__all__ = [
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
