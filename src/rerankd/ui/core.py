"""The UI's logic, without Gradio: reading the form, ranking through an `AsyncReranker`, presenting it.

The page never scores by itself and knows nothing of the server: it ranks through whatever the CLI
hands it, an `AsyncRerankClient` to a server over HTTP (`rerankd ui --url`), or to the server's own app
in-process (`rerankd serve`, so auth, limits, metrics and the access log apply exactly as for the API).
Every failure a person can cause or meet (no query, no documents, a wrong API key, an unreachable
server, a model still loading) becomes a `UIError` whose message the page shows.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rerankd.client import errors
from rerankd.errors import RerankdError
from rerankd.templates import DEFAULT_INSTRUCTION
from rerankd.types import RerankResult
from rerankd.ui.examples import EXAMPLES, Example
from rerankd.ui.render import Shown, present, table_html

if TYPE_CHECKING:
    import httpx

__all__ = [
    "EXAMPLES",
    "AsyncReranker",
    "Backend",
    "Example",
    "Shown",
    "UIError",
    "client_backend",
    "parse_top_n",
    "read_upload",
    "run_ranking",
    "split_documents",
    "table_html",
]

#: Seconds a ranking may take before the page says so instead of spinning.
DEFAULT_TIMEOUT = 120.0
#: The page's span window: its documents are one line each, so spans of about a sentence.
SPAN_TOKENS = 16
#: API keys typed on the page each get their own client; past this many, the oldest is forgotten.
MAX_CLIENTS = 32


# The smoke-test model's served name carries this (rerankd.smoke.SERVED_NAME; the UI may not import it).
SMOKE_LABEL = "NOT-A-REAL-RERANKER"


class UIError(Exception):
    """Something to tell the person at the page, in their terms."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AsyncReranker(Protocol):
    """What the page ranks through: `AsyncRerankClient` (or any object with its `rerank`)."""

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        instruction: str | None = None,
        return_spans: bool = False,
        span_tokens: int | None = None,
    ) -> RerankResult: ...


class Backend:
    """Where the page's rankings come from. `connect(key)` gives the reranker for an API key (the one
    typed on the page, else `default_key`); each is made once and kept for the page's lifetime, so a
    client's provider detection and connection pool outlive a click.

    `where` names the scores' source in messages ("the server at http://..."), `describe()` in the header.
    `models`: a server's served models, for the page's model picker (shown with more than one); a
    picked model's reranker is `connect(key, model)`, the default one's `connect(key)`."""

    def __init__(
        self,
        connect: Callable[..., AsyncReranker],
        *,
        where: str,
        needs_key: bool,
        default_key: str | None = None,
        default_instruction: str | None = None,
        model: str | None = None,
        models: Sequence[str] = (),
        lookup_model: Callable[[], Awaitable[str | None]] | None = None,
        key_hint: str = "",
    ) -> None:
        self.connect = connect
        self.where = where
        self.needs_key = needs_key
        self.default_key = default_key
        self.default_instruction = default_instruction or DEFAULT_INSTRUCTION
        self.model = model
        self.models = tuple(models)
        self.lookup_model = lookup_model
        self.key_hint = key_hint
        self._rerankers: dict[tuple[str | None, str | None], AsyncReranker] = {}

    @property
    def several(self) -> bool:
        """More than one model to pick from."""
        return len(self.models) > 1

    def describe(self) -> str:
        """One line of HTML under the title: the model, and where the scores come from."""
        if self.several:
            parts = ["models " + ", ".join(f"<code>{html.escape(m)}</code>" for m in self.models)]
        else:
            parts = [f"model <code>{html.escape(self.model)}</code>"] if self.model else []
        if any(SMOKE_LABEL in m for m in (self.model or "", *self.models)):
            parts.append(
                '<strong style="color:#b91c1c">random-weight smoke-test model: its scores mean nothing'
                "</strong>"
            )
        if self.where.startswith(("http://", "https://")):
            parts.append(f"server <code>{html.escape(self.where)}</code>")
        return " · ".join(parts) or "rerankd"

    async def refresh_model(self) -> str | None:
        """The model's name for the header, asked once; None while the server can't say."""
        if self.model is None and self.lookup_model is not None:
            try:
                self.model = await self.lookup_model()
            except RerankdError:
                return None
        return self.model

    def reranker(self, key: str | None, model: str | None = None) -> AsyncReranker:
        if (key, model) not in self._rerankers:
            if len(self._rerankers) >= MAX_CLIENTS:  # the clients share one pool: nothing to close
                del self._rerankers[next(iter(self._rerankers))]
            self._rerankers[key, model] = self.connect(key) if model is None else self.connect(key, model)
        return self._rerankers[key, model]

    async def rerank(
        self,
        query: str,
        documents: list[str],
        *,
        instruction: str | None,
        top_n: int | None,
        api_key: str | None,
        model: str | None = None,
        spans: bool = False,
    ) -> RerankResult:
        """`model`: one of `models` (the picker's choice); None: the server's default."""
        key = api_key or self.default_key
        model = model if model and self.several else None
        if model is not None and instruction == self.default_instruction:
            # The box still holds the first model's instruction: each model then uses its own.
            instruction = None
        # return_spans only when asked: a reranker that predates spans still ranks.
        extra: dict[str, Any] = {"return_spans": True, "span_tokens": SPAN_TOKENS} if spans else {}
        try:
            result = await self.reranker(key, model).rerank(
                query, documents, top_n=top_n, instruction=instruction, **extra
            )
        except errors.AuthenticationError as e:
            status = e.status or 401
            if key:
                raise UIError(
                    f"{status}: the server did not accept the API key. Check it and try again."
                ) from None
            raise UIError(
                f"{status}: {self._where_text()} needs an API key: enter it in the API key field{self.key_hint}."
            ) from None
        except errors.ConnectionError:
            raise UIError(
                f"Could not reach the rerankd server at {self.where}: is it running, and is the URL right?"
            ) from None
        except errors.TimeoutError:
            where = self._where_text()
            raise UIError(f"{where[:1].upper()}{where[1:]} did not answer in time; try again.") from None
        except errors.NotFoundError as e:
            if e.server_code == "model_not_found":  # the server's models changed since the page asked
                raise UIError(f"404: {e.message}. Reload the page to see the models it serves now.") from None
            raise UIError(
                f"{self.where} answered 404: is it the base URL of a rerankd server (no /v1/rerank)?"
            ) from None
        except errors.ClientError as e:
            raise UIError(str(e)) from None
        except RerankdError as e:  # an in-process reranker's own errors
            raise UIError(e.message) from None
        if result.model and not self.several:
            self.model = result.model
        return result

    def _where_text(self) -> str:
        return f"the server at {self.where}" if self.where.startswith(("http://", "https://")) else self.where


def client_backend(
    url: str,
    *,
    api_key: str | None = None,
    timeout: float = 60.0,
    retries: int = 1,
    provider: str = "auto",
    transport: httpx.AsyncBaseTransport | None = None,
    needs_key: bool | None = None,
    where: str | None = None,
    model: str | None = None,
    models: Sequence[str] = (),
    default_instruction: str | None = None,
    key_hint: str = "",
) -> Backend:
    """A Backend over `AsyncRerankClient`s to `url` sharing one connection pool (or `transport`, such as
    `httpx.ASGITransport(app)` to rank through an app in the same process). Each retries `retries` times
    (a restart, a 503 while loading) and gives up within `timeout`."""
    import httpx

    from rerankd.client import AsyncRerankClient, RetryPolicy

    # Never closed: it lives as long as the page, and the page as long as the process.
    http = httpx.AsyncClient(timeout=timeout, transport=transport)
    policy = RetryPolicy(max_retries=retries, max_delay=2.0, max_retry_after=5.0, deadline=timeout)

    def connect(key: str | None, model: str | None = None) -> AsyncRerankClient:
        return AsyncRerankClient(
            url, api_key=key, model=model, timeout=timeout, retry=policy, provider=provider, http_client=http
        )

    async def lookup_model() -> str | None:
        models = await connect(api_key).models()
        return models[0].id if models else None

    return Backend(
        connect,
        where=where or url.rstrip("/"),
        needs_key=api_key is None if needs_key is None else needs_key,
        default_key=api_key,
        default_instruction=default_instruction,
        model=model,
        models=models,
        lookup_model=None if model else lookup_model,
        key_hint=key_hint,
    )


# -- the form -----------------------------------------------------------------------------------------


def split_documents(text: str | None) -> list[str]:
    """One document per non-empty line."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def read_upload(path: str | Path) -> list[str]:
    """Documents from an uploaded file: .jsonl lines with a "text" field, or any text, one per line.
    Line breaks inside a JSON text become spaces (the form holds one document per line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UIError(f"{p.name} is not UTF-8 text; upload a .txt or .jsonl file") from None
    lines = [line for line in text.splitlines() if line.strip()]
    as_json = p.suffix.lower() in (".jsonl", ".ndjson") or (lines and lines[0].lstrip().startswith("{"))
    if not as_json:
        return split_documents(text)
    docs: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UIError(f"{p.name}, line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise UIError(f'{p.name}, line {n}: each JSON line needs a string "text" field')
        flat = " ".join(obj["text"].split())
        if flat:
            docs.append(flat)
    return docs


def parse_top_n(value: Any) -> int | None:
    """Empty or 0 means every document."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UIError(f"top_n must be a whole number, got {value!r}") from None
    if number != int(number) or number < 0:
        raise UIError(f"top_n must be a positive whole number (or empty for all), got {value}")
    return int(number) or None


async def run_ranking(
    backend: Backend,
    query: str | None,
    documents_text: str | None,
    instruction: str | None,
    top_n: Any,
    api_key: str | None,
    model: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    spans: bool = False,
) -> Shown:
    """Check the form, rank through the backend, time it. Raises UIError with what to tell the person.
    `spans`: ask for each document's relevant spans, highlighted in the table."""
    query = (query or "").strip()
    if not query:
        raise UIError("Enter a query: the question or search the documents are ranked against.")
    documents = split_documents(documents_text)
    if not documents:
        raise UIError("Add at least one document: one per line, or upload a .txt or .jsonl file.")
    n = parse_top_n(top_n)
    start = time.perf_counter()
    try:
        result = await asyncio.wait_for(
            backend.rerank(
                query,
                documents,
                instruction=(instruction or "").strip() or None,
                top_n=n,
                api_key=(api_key or "").strip() or None,
                model=model or None,
                spans=spans,
            ),
            timeout,
        )
    except asyncio.TimeoutError:
        raise UIError(f"No answer after {timeout:.0f} s: the server is busy or stuck; try again.") from None
    return present(result, documents, time.perf_counter() - start)
