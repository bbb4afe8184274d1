"""The project's exceptions. Each maps to one HTTP status in `server/errors.py` and one client error type."""

from __future__ import annotations


class RerankdError(Exception):
    """Base of every rerankd error. `code` is a stable machine-readable name."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(RerankdError, ValueError):
    """The caller asked for something that can't be done as asked (bad top_n, too many documents...)."""

    status_code = 400
    code = "invalid_request"


class ModelNotFound(RerankdError):
    """The request names a model this server does not serve; the message lists the ones it does."""

    status_code = 404
    code = "model_not_found"


class ModelLoadError(RerankdError):
    """The model could not be found, downloaded or loaded; the message says what was tried."""

    status_code = 500
    code = "model_load_error"


class UnsupportedModelError(ModelLoadError):
    """The model loaded but is not an architecture rerankd can score with."""

    code = "unsupported_model"


class RetryableError(RerankdError):
    """The same request may succeed after `retry_after` seconds (the server sends it as Retry-After)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(RetryableError):
    """The server's queue is full; try again after `retry_after` seconds."""

    status_code = 429
    code = "overloaded"


class Unavailable(RetryableError):
    """The server is loading or shutting down; try again after `retry_after` seconds."""

    status_code = 503
    code = "unavailable"
