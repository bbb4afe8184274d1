"""`ClientOptions`: every option of RerankClient and AsyncRerankClient, stated once (names, types,
defaults, validation). Both clients take them as typed keywords (`OptionArgs`) or as a ready
`options=` object, and keep only the options of their own I/O (http_client, transport, sleep)."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypedDict

from rerankd.client._dialects import PROVIDERS
from rerankd.client._limits import RateLimit
from rerankd.client._retry import RetryPolicy

if TYPE_CHECKING:
    from typing_extensions import Unpack

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_DEADLINE = 300.0


@dataclass(frozen=True)
class ClientOptions:
    """What a client does, apart from its I/O. `retry`, when given, replaces `max_retries` and
    `deadline` (a RetryPolicy for full control: delays, jitter, the Retry-After cap)."""

    base_url: str
    api_key: str | None = None
    model: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT  # seconds per attempt
    max_retries: int = DEFAULT_MAX_RETRIES
    deadline: float | None = DEFAULT_DEADLINE  # seconds for a whole call, retries and waits included
    retry: RetryPolicy | None = None
    rate_limit: RateLimit | None = None
    provider: str = "auto"
    template: str | None = "auto"
    max_docs_per_request: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        url = self.base_url
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as http://127.0.0.1:8000, got {url!r}")
        if self.provider not in PROVIDERS:
            raise ValueError(f"unknown provider {self.provider!r}; expected one of {', '.join(PROVIDERS)}")
        if self.template not in ("auto", "qwen3", None):
            raise ValueError(f'template must be "auto", "qwen3" or None, got {self.template!r}')
        if self.max_docs_per_request is not None and self.max_docs_per_request < 1:
            raise ValueError(f"max_docs_per_request must be >= 1, got {self.max_docs_per_request}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None, got {self.timeout}")
        object.__setattr__(self, "base_url", url.rstrip("/"))
        # A read-only copy: the caller's dict may change later, these options may not.
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        if self.retry is None:
            # Validates max_retries and deadline now, not at the first retry.
            RetryPolicy(max_retries=self.max_retries, deadline=self.deadline)

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.retry or RetryPolicy(max_retries=self.max_retries, deadline=self.deadline)

    def replace(self, **changes: Unpack[OptionArgs]) -> ClientOptions:
        return dataclasses.replace(self, **changes)


class OptionArgs(TypedDict, total=False):
    """ClientOptions as keywords (all but base_url), for the clients' typed `**options`."""

    api_key: str | None
    model: str | None
    timeout: float | None
    max_retries: int
    deadline: float | None
    retry: RetryPolicy | None
    rate_limit: RateLimit | None
    provider: str
    template: str | None
    max_docs_per_request: int | None
    headers: Mapping[str, str]
    clock: Callable[[], float]
    rand: Callable[[], float]


def resolve_options(
    base_url: str | None, options: ClientOptions | None, keywords: Mapping[str, Any]
) -> ClientOptions:
    """One ClientOptions from a client's arguments: `options` with the keywords (and base_url) on
    top, or the keywords alone."""
    unknown = set(keywords) - set(OptionArgs.__annotations__)
    if unknown:
        raise TypeError(f"unexpected client options {sorted(unknown)}")
    if options is None:
        if base_url is None:
            raise TypeError("a client needs base_url (or options=ClientOptions(...))")
        return ClientOptions(base_url, **keywords)
    changes = dict(keywords)
    if base_url is not None:
        changes["base_url"] = base_url
    return dataclasses.replace(options, **changes) if changes else options


__all__ = ["DEFAULT_MAX_RETRIES", "DEFAULT_TIMEOUT", "ClientOptions", "OptionArgs", "resolve_options"]
