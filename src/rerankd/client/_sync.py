"""RerankClient: the blocking client. Its only own code is the I/O loop; the rest is in `_base` and the modules it uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import httpx

from rerankd.client._base import BaseClient, resolve_documents, span_options, validate_call
from rerankd.client._detect import Detection, RemoteModel, detection_steps, parse_models
from rerankd.client._dialects import Request, SliceAnswer
from rerankd.client._limits import SyncLimiter
from rerankd.client._retry import Attempts
from rerankd.client.errors import ClientError, error_from_transport
from rerankd.client.options import ClientOptions, OptionArgs, resolve_options
from rerankd.types import DocumentLike, RerankResult

if TYPE_CHECKING:
    from typing_extensions import Unpack


class _Aborted(Exception):
    """A slice stopped because another slice of the same call failed (never reaches the caller)."""


class RerankClient(BaseClient):
    """A blocking client for rerankd or any rerank provider; satisfies `rerankd.types.Reranker`.

    Thread-safe: one connection pool (httpx.Client) per client, shared by every thread and by the
    concurrent requests of a call split by `max_docs_per_request`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        options: ClientOptions | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = http_client or httpx.Client(
            timeout=self.timeout,
            limits=httpx.Limits(max_keepalive_connections=self.fanout * 2),
            transport=transport,
        )
        self._limiter = SyncLimiter(self.rate_limit, self.options.clock, sleep)
        self._detect_lock = threading.Lock()

    # -- the I/O loop --------------------------------------------------------------------------------

    def _send(self, request: Request, abort: threading.Event | None = None) -> Any:
        """One request with retries: the JSON answer, or the final typed error. A set `abort` (another
        slice of the same call failed) stops the retries."""
        attempts = Attempts(self.retry, self.timeout, self.options.clock, self.options.rand)
        url = self._url(request.path)
        while True:
            if abort is not None and abort.is_set():
                raise _Aborted
            try:
                timeout = attempts.timeout()
                with self._limiter.slot():
                    response = self._http.request(
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
            self.sleep(attempts.next_delay(error))

    def _gather(self, requests: list[Request]) -> list[tuple[Request, SliceAnswer]]:
        if len(requests) == 1:
            return [(requests[0], self._parse(requests[0], self._send(requests[0])))]
        pool = ThreadPoolExecutor(max_workers=min(len(requests), self.fanout), thread_name_prefix="rerankd")
        abort = threading.Event()
        try:
            futures = [pool.submit(self._send, r, abort) for r in requests]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
            return [(r, self._parse(r, f.result())) for r, f in zip(requests, futures, strict=True)]
        finally:
            # On failure, don't wait for the other slices' retries: tell them to stop and return now.
            abort.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def _resolve_provider(self) -> Detection:
        if self._detection is not None:
            return self._detection
        with self._detect_lock:
            if self._detection is not None:
                return self._detection
            # Drive the one detection routine with this client's I/O (see _detect.detection_steps).
            steps = detection_steps(self.base_url)
            request = next(steps)
            try:
                while True:
                    try:
                        payload = self._send(request)
                    except ClientError as e:
                        request = steps.throw(e)
                    else:
                        request = steps.send(payload)
            except StopIteration as done:
                self._detection = done.value
                return done.value

    # -- the API -------------------------------------------------------------------------------------

    def rerank(
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
        self._resolve_provider()
        answers = self._gather(self._plan(query, docs, top_n, instruction, spans))
        return self._ranking(answers, docs, top_n, return_documents)

    def score(
        self, query: str, documents: Sequence[DocumentLike], *, instruction: str | None = None
    ) -> list[float]:
        """Relevance scores in input order."""
        validate_call(query, None)
        docs = resolve_documents(documents)
        if not docs:
            return []
        self._resolve_provider()
        return self._scores(self._gather(self._plan(query, docs, None, instruction)), len(docs))

    def models(self) -> list[RemoteModel]:
        """The models the server lists at GET /v1/models."""
        return parse_models(self._send(Request("GET", "/v1/models")))

    def health(self) -> dict[str, Any]:
        """GET /health: the server's answer ({"status": "ok"} for an empty or plain-text 2xx); raises
        if unhealthy."""
        return self._health(self._send(Request("GET", "/health", json_optional=True)))

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
