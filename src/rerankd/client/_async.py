"""AsyncRerankClient: the asyncio client. Same options and methods as RerankClient, awaited; its only
own code is the I/O loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from rerankd.client._base import BaseClient, resolve_documents, span_options, validate_call
from rerankd.client._detect import Detection, RemoteModel, detection_steps, parse_models
from rerankd.client._dialects import Request, SliceAnswer
from rerankd.client._limits import AsyncLimiter
from rerankd.client._retry import Attempts
from rerankd.client.errors import ClientError, error_from_transport
from rerankd.client.options import ClientOptions, OptionArgs, resolve_options
from rerankd.types import DocumentLike, RerankResult

if TYPE_CHECKING:
    from typing_extensions import Unpack


class AsyncRerankClient(BaseClient):
    """An asyncio client for rerankd or any rerank provider: RerankClient's methods, awaited.

    One connection pool (httpx.AsyncClient) per client; the requests of a call split by
    `max_docs_per_request` go out together (asyncio.gather) within the rate limits.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        options: ClientOptions | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **kwargs: Unpack[OptionArgs],
    ) -> None:
        """`base_url` and the keywords are ClientOptions' fields (see `rerankd.client.options`), on top
        of `options` when given. `http_client` brings your own pool; `transport` (an httpx transport,
        such as httpx.ASGITransport or httpx.MockTransport) goes into the pool the client makes."""
        super().__init__(resolve_options(base_url, options, kwargs))
        if http_client is not None and transport is not None:
            raise ValueError("pass http_client or transport, not both: the transport belongs to the pool")
        self.sleep = sleep
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=self.timeout,
            limits=httpx.Limits(max_keepalive_connections=self.fanout * 2),
            transport=transport,
        )
        self._limiter = AsyncLimiter(self.rate_limit, self.options.clock, sleep)
        self._detect_lock: asyncio.Lock | None = None

    # -- the I/O loop --------------------------------------------------------------------------------

    async def _send(self, request: Request) -> Any:
        """One request with retries: the JSON answer, or the final typed error."""
        attempts = Attempts(self.retry, self.timeout, self.options.clock, self.options.rand)
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

    async def _gather(self, requests: list[Request]) -> list[tuple[Request, SliceAnswer]]:
        fanout = asyncio.Semaphore(self.fanout)

        async def one(request: Request) -> tuple[Request, SliceAnswer]:
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
            # Drive the one detection routine with this client's I/O (see _detect.detection_steps).
            steps = detection_steps(self.base_url)
            request = next(steps)
            try:
                while True:
                    try:
                        payload = await self._send(request)
                    except ClientError as e:
                        request = steps.throw(e)
                    else:
                        request = steps.send(payload)
            except StopIteration as done:
                self._detection = done.value
                return done.value

    # -- the API -------------------------------------------------------------------------------------

    async def rerank(
        self,
        query: str,
        documents: Sequence[DocumentLike],
        *,
        top_n: int | None = None,
        instruction: str | None = None,
        return_documents: bool = False,
        return_spans: bool = False,
        max_spans: int | None = None,
        span_tokens: int | None = None,
    ) -> RerankResult:
        """Documents sorted by relevance, best first, with indices into `documents`. `return_spans`:
        each result also carries its relevant spans (a rerankd server only; docs/spans.md)."""
        validate_call(query, top_n)
        spans = span_options(return_spans, max_spans, span_tokens)
        docs = resolve_documents(documents)
        if not docs:
            return RerankResult(results=(), model=self.model_name)
        await self._resolve_provider()
        answers = await self._gather(self._plan(query, docs, top_n, instruction, spans))
        return self._ranking(answers, docs, top_n, return_documents)

    async def score(
        self, query: str, documents: Sequence[DocumentLike], *, instruction: str | None = None
    ) -> list[float]:
        """Relevance scores in input order."""
        validate_call(query, None)
        docs = resolve_documents(documents)
        if not docs:
            return []
        await self._resolve_provider()
        return self._scores(await self._gather(self._plan(query, docs, None, instruction)), len(docs))

    async def models(self) -> list[RemoteModel]:
        """The models the server lists at GET /v1/models."""
        return parse_models(await self._send(Request("GET", "/v1/models")))

    async def health(self) -> dict[str, Any]:
        """GET /health: the server's answer ({"status": "ok"} for an empty or plain-text 2xx); raises
        if unhealthy."""
        return self._health(await self._send(Request("GET", "/health", json_optional=True)))

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
