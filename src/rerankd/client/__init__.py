"""A resilient client for rerankd and other rerank providers (vLLM, SiliconFlow, Cohere, Jina, TEI).

`RerankClient` (blocking, thread-safe) and `AsyncRerankClient` (asyncio) share their options
(`ClientOptions`) and pure logic split by concern: `_retry` (retry policy, backoff and jitter),
`_dialects` (request bodies per provider, client-side Qwen3 templating, answer parsing), `_detect`
(provider detection, one sans-I/O routine), `_merge` (slicing and merging), `errors` (typed errors and
their mapping from HTTP); only their I/O loops differ. Both have `rerank()`, `score()`, `models()` and `health()`, and the sync
client satisfies `rerankd.types.Reranker`, so the UI and the evaluation harness take it in place of a
local model. Light: httpx and pydantic only, never torch, transformers or FastAPI. See docs/client.md.
"""

from rerankd.client._async import AsyncRerankClient
from rerankd.client._detect import RemoteModel
from rerankd.client._dialects import PROVIDERS
from rerankd.client._limits import RateLimit
from rerankd.client._retry import RetryPolicy
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
from rerankd.client.options import ClientOptions

__all__ = [
    "PROVIDERS",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncRerankClient",
    "AuthenticationError",
    "BadRequestError",
    "ClientError",
    "ClientOptions",
    "InvalidResponseError",
    "NotFoundError",
    "RateLimit",
    "RateLimitError",
    "RemoteModel",
    "RerankClient",
    "RetryPolicy",
    "ServerError",
]
