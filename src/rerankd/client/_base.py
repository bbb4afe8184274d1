"""What the sync and the async client share: options, headers, planning a call into requests,
provider detection and the final assembly of results. Only the I/O loop lives in `_sync`/`_async`."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rerankd.client._core import (
    DEFAULT_FANOUT,
    FALLBACK_PROVIDER,
    PROVIDERS,
    Chunk,
    Detection,
    RateLimit,
    RemoteModel,
    Request,
    RetryPolicy,
    build_rerank_request,
    detect_provider,
    error_from_response,
    merge_ranking,
    merge_scores,
    parse_rerank_answer,
    plan_slices,
    validate_call,
    wants_template,
)
from rerankd.client.errors import ClientError, InvalidResponseError, NotFoundError
from rerankd.types import Document, RerankResult

log = logging.getLogger("rerankd.client")

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
USER_AGENT = "rerankd-client/0.1"


class BaseClient:
    """Options and pure steps common to RerankClient and AsyncRerankClient."""

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
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must be an http(s) URL such as http://127.0.0.1:8000, got {base_url!r}"
            )
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
        if template not in ("auto", "qwen3", None):
            raise ValueError(f'template must be "auto", "qwen3" or None, got {template!r}')
        if max_docs_per_request is not None and max_docs_per_request < 1:
            raise ValueError(f"max_docs_per_request must be >= 1, got {max_docs_per_request}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.retry = retry or RetryPolicy(max_retries=max_retries, deadline=deadline)
        self.rate_limit = rate_limit
        self.template = template
        self.max_docs_per_request = max_docs_per_request
        self.clock = clock
        self.rand = rand
        self._extra_headers = dict(headers or {})
        self._requested_provider = provider
        self._detection: Detection | None = (
            None if provider == "auto" else Detection(provider, None, "chosen by the caller")
        )
        self._last_model: str | None = None
        self._warned_instruction = False

    # -- state ---------------------------------------------------------------------------------------

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
        return wants_template(self.provider, self.template, self.model or detected)

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
        headers = {"user-agent": USER_AGENT, "x-request-id": request.request_id, **self._extra_headers}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
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
            raise InvalidResponseError(
                f"the answer to {request.method} {request.path} is not JSON: {content[:200]!r}",
                status=status,
                request_id=headers.get("x-request-id") or request.request_id,
                url=self._url(request.path),
            ) from None

    def _plan(
        self, query: str, documents: Sequence[Document], top_n: int | None, instruction: str | None
    ) -> list[Request]:
        provider = self.provider
        template = self.templating
        if (
            instruction is not None
            and not template
            and provider not in ("rerankd", "siliconflow")
            and not self._warned_instruction
        ):
            self._warned_instruction = True
            log.warning(
                "provider %r takes no instruction and the client applies no template here: the instruction "
                "is not sent (pass template='qwen3' if the model is a Qwen3-Reranker)",
                provider,
            )
        texts = [d.text for d in documents]
        slices = plan_slices(len(texts), self.max_docs_per_request)
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
            )
            for start, end in slices
        ]

    @staticmethod
    def _health(payload: Any) -> dict[str, Any]:
        if payload is None:
            return {"status": "ok"}
        if not isinstance(payload, dict):
            raise InvalidResponseError(f"GET /health answered {str(payload)[:200]}")
        return payload

    def _parse(self, request: Request, payload: Any) -> Chunk:
        chunk = parse_rerank_answer(payload, request)
        if chunk.model:
            self._last_model = chunk.model
        return chunk

    def _ranking(
        self,
        answers: Sequence[tuple[Request, Chunk]],
        documents: Sequence[Document],
        top_n: int | None,
        return_documents: bool,
    ) -> RerankResult:
        return merge_ranking(
            answers, documents, top_n=top_n, return_documents=return_documents, model=self.model_name
        )

    def _scores(self, answers: Sequence[tuple[Request, Chunk]], n: int) -> list[float]:
        return merge_scores(answers, n)

    @staticmethod
    def _check(query: str, top_n: int | None) -> None:
        validate_call(query, top_n)

    # -- detection -----------------------------------------------------------------------------------

    def _detected(
        self, models: list[RemoteModel] | None, why_not: str = "", tei: Detection | None = None
    ) -> Detection:
        detection = tei or detect_provider(models, why_not)
        if detection.fallback:
            log.warning(
                "rerankd client: could not tell which server %s is (%s); using the %r wire format without "
                "client-side templating. Pass provider=... to choose.",
                self.base_url,
                detection.reason,
                FALLBACK_PROVIDER,
            )
        else:
            log.info("rerankd client: %s is %s (%s)", self.base_url, detection.provider, detection.reason)
        self._detection = detection
        return detection

    @staticmethod
    def _tei_info(payload: Any) -> Detection | None:
        """TEI answers GET /info with its model id and model type."""
        if not isinstance(payload, dict) or not isinstance(payload.get("model_type"), dict):
            return None
        if "reranker" not in payload["model_type"]:
            return None
        model = payload.get("model_id")
        return Detection("tei", model if isinstance(model, str) else None, "GET /info: a TEI reranker")

    @staticmethod
    def _detection_error_is_final(error: ClientError) -> bool:
        """Errors that stop detection (and the call): auth, and no answer at all. A 404 or a 4xx
        means the server has no such route, and detection falls back."""
        return not isinstance(error, NotFoundError | InvalidResponseError) and (
            error.status is None or error.status in (401, 403) or error.status >= 500
        )


__all__ = ["BaseClient", "RateLimit", "RetryPolicy"]
