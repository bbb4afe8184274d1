"""What the sync and the async client share: options, headers, decoding answers, planning a call
into requests, and the final assembly of results. Only the I/O loops live in `_sync`/`_async`
(openai-python's `_base_client.py` shape); provider detection is `_detect.detection_steps`, which
both loops drive."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rerankd.client._detect import Detection
from rerankd.client._dialects import (
    TAKES_INSTRUCTION,
    Request,
    SliceAnswer,
    SpanOptions,
    build_rerank_request,
    parse_rerank_answer,
    wants_template,
)
from rerankd.client._limits import RateLimit
from rerankd.client._merge import merge_ranking, merge_scores, plan_slices
from rerankd.client._retry import RetryPolicy
from rerankd.client.errors import BadRequestError, InvalidResponseError, error_from_response
from rerankd.client.options import ClientOptions
from rerankd.errors import InvalidRequest
from rerankd.spans import validate as validate_spans
from rerankd.types import Document, DocumentLike, RerankResult, as_document

log = logging.getLogger("rerankd.client")

USER_AGENT = "rerankd-client/0.1"
DEFAULT_FANOUT = 8


def resolve_documents(documents: Sequence[DocumentLike]) -> list[Document]:
    if isinstance(documents, str):
        raise TypeError("documents must be a list of str or rerankd.Document, not one str")
    return [as_document(d) for d in documents]


def validate_call(query: str, top_n: int | None) -> None:
    if not isinstance(query, str):
        raise BadRequestError(f"query must be a string, got {type(query).__name__}")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise BadRequestError(f"top_n must be a positive integer or None, got {top_n!r}")


def span_options(return_spans: bool, max_spans: int | None, span_tokens: int | None) -> SpanOptions | None:
    """The spans options of a rerank call, checked before any request (None: spans not asked for)."""
    if not return_spans:
        return None
    try:
        validate_spans(max_spans, span_tokens)
    except InvalidRequest as e:
        raise BadRequestError(e.message) from None
    return SpanOptions(max_spans, span_tokens)


class BaseClient:
    """Options and pure steps common to RerankClient and AsyncRerankClient."""

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self.retry: RetryPolicy = options.retry_policy
        self._detection: Detection | None = (
            None if options.provider == "auto" else Detection(options.provider, None, "chosen by the caller")
        )
        self._last_model: str | None = None
        self._warned_instruction = False

    # -- options and state ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.options.base_url

    @property
    def model(self) -> str | None:
        return self.options.model

    @property
    def timeout(self) -> float | None:
        return self.options.timeout

    @property
    def rate_limit(self) -> RateLimit | None:
        return self.options.rate_limit

    @property
    def provider(self) -> str:
        """The wire dialect in use: the one asked for, or what "auto" detected ("auto" until then)."""
        return self._detection.provider if self._detection else "auto"

    @property
    def model_name(self) -> str:
        """The model's name: as configured, else as the server named it (after a call), else ''."""
        detected = self._detection.model if self._detection else None
        return self.model or self._last_model or detected or ""

    @property
    def templating(self) -> bool:
        """Whether this client applies the Qwen3-Reranker template itself (known once detected)."""
        detected = self._detection.model if self._detection else None
        # From the configuration or detection only: never flips with the name an answer carries.
        return wants_template(self.provider, self.options.template, self.model or detected)

    @property
    def fanout(self) -> int:
        limit = self.rate_limit.max_concurrent if self.rate_limit else None
        return limit or DEFAULT_FANOUT

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.base_url!r}, provider={self.provider!r}, model={self.model_name!r})"
        )

    # -- requests ------------------------------------------------------------------------------------

    def _headers(self, request: Request) -> dict[str, str]:
        headers = {"user-agent": USER_AGENT, "x-request-id": request.request_id, **self.options.headers}
        if self.options.api_key:
            headers["authorization"] = f"Bearer {self.options.api_key}"
        return headers

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _decode(self, request: Request, status: int, headers: Mapping[str, str], content: bytes) -> Any:
        """The JSON of a 2xx answer, or the typed error for anything else."""
        if not 200 <= status < 300:
            raise error_from_response(
                status, headers, content, sent_request_id=request.request_id, url=self._url(request.path)
            )
        if not content.strip():
            return None
        try:
            return json.loads(content)
        except ValueError:
            if request.json_optional:
                return None
            raise InvalidResponseError(
                f"the answer to {request.method} {request.path} is not JSON: {content[:200]!r}",
                status=status,
                request_id=headers.get("x-request-id") or request.request_id,
                url=self._url(request.path),
            ) from None

    def _plan(
        self,
        query: str,
        documents: Sequence[Document],
        top_n: int | None,
        instruction: str | None,
        spans: SpanOptions | None = None,
    ) -> list[Request]:
        provider = self.provider
        if spans is not None and provider != "rerankd":
            raise BadRequestError(
                f"return_spans needs a rerankd server; this client speaks {provider!r}, which has no spans"
            )
        template = self.templating
        unsent = instruction is not None and not template and provider not in TAKES_INSTRUCTION
        if unsent and not self._warned_instruction:
            self._warned_instruction = True
            log.warning(
                "provider %r takes no instruction and the client applies no template here: the "
                "instruction is not sent (pass template='qwen3' if the model is a Qwen3-Reranker)",
                provider,
            )
        texts = [d.text for d in documents]
        return [
            build_rerank_request(
                provider,
                model=self.model,
                query=query,
                documents=texts[start:end],
                top_n=None if top_n is None else min(top_n, end - start),
                instruction=instruction,
                template=template,
                offset=start,
                spans=spans,
            )
            for start, end in plan_slices(len(texts), self.options.max_docs_per_request)
        ]

    @staticmethod
    def _health(payload: Any) -> dict[str, Any]:
        if payload is None:
            return {"status": "ok"}
        if not isinstance(payload, dict):
            raise InvalidResponseError(f"GET /health answered {str(payload)[:200]}")
        return payload

    def _parse(self, request: Request, payload: Any) -> SliceAnswer:
        chunk = parse_rerank_answer(payload, request)
        if chunk.model:
            self._last_model = chunk.model
        return chunk

    def _ranking(
        self,
        answers: Sequence[tuple[Request, SliceAnswer]],
        documents: Sequence[Document],
        top_n: int | None,
        return_documents: bool,
    ) -> RerankResult:
        return merge_ranking(
            answers, documents, top_n=top_n, return_documents=return_documents, model=self.model_name
        )

    @staticmethod
    def _scores(answers: Sequence[tuple[Request, SliceAnswer]], n: int) -> list[float]:
        return merge_scores(answers, n)


__all__ = ["BaseClient", "resolve_documents", "span_options", "validate_call"]
