"""A resilient client for rerankd and other rerank providers (vLLM, SiliconFlow, Cohere, Jina, TEI).

`RerankClient` (blocking, thread-safe) and `AsyncRerankClient` (asyncio) share one core of pure logic
(`_core`: request building per dialect, client-side Qwen3 templating, retry policy, error mapping);
only their I/O loops differ. Both have `rerank()`, `score()`, `models()` and `health()`, and the sync
client satisfies `rerankd.types.Reranker`, so the UI and the evaluation harness take it in place of a
local model. Light: httpx and pydantic only, never torch, transformers or FastAPI. See docs/client.md.
"""

from rerankd.client._async import AsyncRerankClient
from rerankd.client._core import PROVIDERS, RateLimit, RemoteModel, RetryPolicy
from rerankd.client._sync import RerankClient
from rerankd.client.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "PROVIDERS",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncRerankClient",
    "AuthenticationError",
    "BadRequestError",
    "ClientError",
    "InvalidResponseError",
    "NotFoundError",
    "RateLimit",
    "RateLimitError",
    "RemoteModel",
    "RerankClient",
    "RetryPolicy",
    "ServerError",
]
