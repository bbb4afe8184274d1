"""AsyncRerankClient: the asyncio client. Same options and methods as RerankClient, awaited; its only
own code is the I/O loop."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from rerankd.client._base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, BaseClient
from rerankd.client._core import (
    Attempts,
    Chunk,
    Detection,
    RateLimit,
    RemoteModel,
    Request,
    RetryPolicy,
    error_from_transport,
    parse_models,
    resolve_documents,
)
from rerankd.client._limits import AsyncLimiter
from rerankd.client.errors import ClientError, InvalidResponseError
from rerankd.types import DocumentLike, RerankResult


class AsyncRerankClient(BaseClient):
    """An asyncio client for rerankd or any rerank provider: RerankClient's methods, awaited.

    One connection pool (httpx.AsyncClient) per client; the requests of a call split by
    `max_docs_per_request` go out together (asyncio.gather) within the rate limits.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        rate_limit: RateLimit | None = None,
        provider: str = "auto",
        template: str | None = "auto",
        max_docs_per_request: int | None = None,
        deadline: float | None = 300.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            model=model,
            timeout=timeout,
            max_retries=max_retries,
            rate_limit=rate_limit,
            provider=provider,
            template=template,
            max_docs_per_request=max_docs_per_request,
            deadline=deadline,
            retry=retry,
            headers=headers,
            clock=clock,
            rand=rand,
        )
        self.sleep = sleep
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_keepalive_connections=self.fanout * 2)
        )
        self._limiter = AsyncLimiter(rate_limit, clock, sleep)
        self._detect_lock: asyncio.Lock | None = None

    # -- the I/O loop --------------------------------------------------------------------------------

    async def _send(self, request: Request) -> Any:
        """One request with retries: the JSON answer, or the final typed error."""
        attempts = Attempts(self.retry, self.timeout, self.clock, self.rand)
        url = self._url(request.path)
        while True:
            try:
                timeout = attempts.timeout()
                async with self._limiter.slot():
                    response = await self._http.request(
                        request.method,
                        url,
                        json=request.body,
                        headers=self._headers(request),
                        timeout=httpx.Timeout(timeout),
                    )
                return self._decode(request, response.status_code, response.headers, response.content)
            except ClientError as e:
                error = e
            except httpx.HTTPError as e:
                error = error_from_transport(e, url=url, request_id=request.request_id)
            await self.sleep(attempts.next_delay(error))

    async def _gather(self, requests: list[Request]) -> list[tuple[Request, Chunk]]:
        fanout = asyncio.Semaphore(self.fanout)

        async def one(request: Request) -> tuple[Request, Chunk]:
            async with fanout:
                return request, self._parse(request, await self._send(request))

        if len(requests) == 1:
            return [await one(requests[0])]
        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _resolve_provider(self) -> Detection:
        if self._detection is not None:
            return self._detection
        if self._detect_lock is None:
            self._detect_lock = asyncio.Lock()
        async with self._detect_lock:
            if self._detection is not None:
                return self._detection
            try:
                return self._detected(await self.models())
            except ClientError as e:
                if self._detection_error_is_final(e):
                    raise
                why = f"GET /v1/models: {e}"
            try:
                tei = self._tei_info(await self._send(Request("GET", "/info")))
            except ClientError as e:
                if self._detection_error_is_final(e):
                    raise
                tei = None
            return self._detected(None, why, tei)

    # -- the API -------------------------------------------------------------------------------------

    async def rerank(
        self,
        query: str,
        documents: Sequence[DocumentLike],
        *,
        top_n: int | None = None,
        instruction: str | None = None,
        return_documents: bool = False,
    ) -> RerankResult:
        """Documents sorted by relevance, best first, with indices into `documents`."""
        self._check(query, top_n)
        docs = resolve_documents(documents)
        if not docs:
            return RerankResult(results=(), model=self.model_name)
        await self._resolve_provider()
        answers = await self._gather(self._plan(query, docs, top_n, instruction))
        return self._ranking(answers, docs, top_n, return_documents)

    async def score(
        self, query: str, documents: Sequence[DocumentLike], *, instruction: str | None = None
    ) -> list[float]:
        """Relevance scores in input order."""
        self._check(query, None)
        docs = resolve_documents(documents)
        if not docs:
            return []
        await self._resolve_provider()
        return self._scores(await self._gather(self._plan(query, docs, None, instruction)), len(docs))

    async def models(self) -> list[RemoteModel]:
        """The models the server lists at GET /v1/models."""
        return parse_models(await self._send(Request("GET", "/v1/models")))

    async def health(self) -> dict[str, Any]:
        """GET /health: the server's answer ({"status": "ok"} for an empty 200); raises if unhealthy."""
        try:
            payload = await self._send(Request("GET", "/health"))
        except InvalidResponseError as e:
            if e.status is not None and 200 <= e.status < 300:
                return {"status": "ok"}  # a 2xx that is not JSON (TEI, plain-text health checks)
            raise
        return self._health(payload)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
