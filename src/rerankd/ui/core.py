"""The UI's logic, without Gradio: reading the inputs, asking a backend to rank, presenting the answer.

A backend is where the scores come from: the server's own engine (`EngineBackend`, when `rerankd serve`
mounts the UI) or a rerankd server over HTTP (`ClientBackend`, for `rerankd ui --url`). Every failure a
person can cause or meet (no query, no documents, a wrong API key, an unreachable server, a model still
loading) becomes a `UIError` whose message the page shows; nothing here raises past the page.
"""

from __future__ import annotations

import asyncio
import html
import inspect
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rerankd.templates import DEFAULT_INSTRUCTION

if TYPE_CHECKING:
    from rerankd.server.state import ServerState

#: Seconds a ranking may take before the page says so instead of spinning.
DEFAULT_TIMEOUT = 120.0
HEADERS = ["rank", "score", "index", "document"]
MAX_LABEL = 28


@dataclass(frozen=True)
class Example:
    label: str
    query: str
    documents: str
    instruction: str


EXAMPLES: list[Example] = [
    Example(
        "中文 · 如何实现Python中的异步爬虫?",
        "如何实现Python中的异步爬虫?",
        "\n".join(
            [
                "requests 是一个简单易用的 HTTP 库,requests.get() 会同步下载网页,每个请求都会阻塞直到响应返回。",
                "用 asyncio 和 aiohttp 实现异步爬虫:用 async def 定义协程,通过 aiohttp.ClientSession 并发发送请求,"
                "再用 asyncio.gather 同时抓取多个网页。",
                "pandas 是数据分析库,DataFrame 可以读取 CSV 文件并按列分组统计。",
            ]
        ),
        DEFAULT_INSTRUCTION,
    ),
    Example(
        "English RAG · What causes the seasons?",
        "What causes the seasons on Earth?",
        "\n".join(
            [
                "The Moon's phases come from how much of its sunlit half we see from Earth during its orbit.",
                "Seasons are caused by the 23.4° tilt of Earth's axis: each hemisphere leans toward the Sun "
                "for part of the year and receives more direct sunlight and longer days.",
                "Earth's orbit is slightly elliptical, but its distance from the Sun changes too little to "
                "cause summer and winter; the closest approach is in January.",
                "Photosynthesis converts light energy into chemical energy stored in glucose.",
            ]
        ),
        "Given a question, retrieve passages that answer it",
    ),
    Example(
        "Code search · reverse a linked list",
        "reverse a singly linked list in python",
        "\n".join(
            [
                "def reverse_string(s: str) -> str: return s[::-1]",
                "def reverse_list(head): prev = None; "
                "while head: head.next, prev, head = prev, head, head.next; return prev",
                "class Node: def __init__(self, value, next=None): self.value, self.next = value, next",
                "sorted(items, key=lambda x: x.priority, reverse=True)",
            ]
        ),
        "Given a code search query, retrieve code snippets that implement it",
    ),
    Example(
        "Deutsch → many languages · Eiffelturm",
        "Wie hoch ist der Eiffelturm?",
        "\n".join(
            [
                "La tour Eiffel mesure 330 mètres de hauteur avec ses antennes.",
                "The Eiffel Tower was built for the 1889 World's Fair in Paris.",
                "東京タワーの高さは333メートルです。",
                "Der Kölner Dom ist eine römisch-katholische Kathedrale in Köln.",
            ]
        ),
        "Given a question, retrieve passages in any language that answer it",
    ),
]


class UIError(Exception):
    """Something to tell the person at the page, in their terms."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Ranking:
    """A backend's answer: (index, score) best first, the model that scored, the tokens it read."""

    results: tuple[tuple[int, float], ...]
    model: str
    prompt_tokens: int | None = None


@dataclass(frozen=True)
class Shown:
    """What the page shows after a click: table rows, chart rows, the status line (HTML)."""

    rows: list[list[Any]]
    chart: list[tuple[str, float]]
    status: str
    model: str
    seconds: float

    @property
    def table(self) -> str:
        return table_html(self.rows)


class Backend(Protocol):
    #: Whether the page asks for an API key.
    needs_key: bool
    #: The instruction the form starts with.
    default_instruction: str

    def describe(self) -> str:
        """One line of HTML under the title: the model, or where the scores come from."""
        ...

    async def rerank(
        self,
        query: str,
        documents: list[str],
        *,
        instruction: str | None,
        top_n: int | None,
        api_key: str | None,
    ) -> Ranking: ...


# -- inputs ------------------------------------------------------------------------------------------


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


# -- presenting --------------------------------------------------------------------------------------


def status_html(message: str, kind: str = "ok") -> str:
    """The status line; `kind` is ok, error or info. `message` is HTML the caller escaped."""
    icon = {"error": "⚠️ ", "info": ""}.get(kind, "")
    role = ' role="alert"' if kind == "error" else ""
    return f'<div class="rr-status rr-{kind}"{role}>{icon}{message}</div>'


def error_html(message: str) -> str:
    return status_html(html.escape(message), "error")


def table_html(rows: Sequence[Sequence[Any]]) -> str:
    """The ranking as a plain HTML table (rank, score, index, document): it wraps on a phone, and a
    screen reader reads it as a table."""
    if not rows:
        return ""
    head = "".join(f'<th scope="col" class="rr-{h}">{h}</th>' for h in HEADERS)
    body = []
    for rank, score, index, text in rows:
        width = max(0.0, min(1.0, float(score))) * 100
        body.append(
            "<tr>"
            f'<td class="rr-rank">{rank}</td>'
            f'<td class="rr-score">{score:.4f}<span class="rr-bar" style="width:{width:.1f}%"></span></td>'
            f'<td class="rr-index">{index}</td>'
            f'<td class="rr-document">{html.escape(str(text))}</td>'
            "</tr>"
        )
    return (
        '<table class="rr-table"><caption>Ranking, best first</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def label(index: int, text: str) -> str:
    """A bar's name: the document's input index and the start of its text (unique by the index)."""
    short = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1].rstrip() + "…"
    return f"[{index}] {short}"


def present(ranking: Ranking, documents: Sequence[str], seconds: float) -> Shown:
    rows = [
        [rank, round(score, 4), index, documents[index]]
        for rank, (index, score) in enumerate(ranking.results, 1)
    ]
    chart = [(label(index, documents[index]), round(score, 4)) for index, score in ranking.results]
    n, shown = len(documents), len(ranking.results)
    what = f"the top <b>{shown}</b> of <b>{n}</b> documents" if shown < n else f"<b>{n}</b> documents"
    took = f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"
    parts = [f"Ranked {what} in <b>{took}</b>", f"model <code>{html.escape(ranking.model or '?')}</code>"]
    if ranking.prompt_tokens:
        parts.append(f"{ranking.prompt_tokens} tokens")
    return Shown(rows, chart, status_html(" · ".join(parts)), ranking.model, seconds)


async def run_ranking(
    backend: Backend,
    query: str | None,
    documents_text: str | None,
    instruction: str | None,
    top_n: Any,
    api_key: str | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Shown:
    """Check the form, rank through the backend, time it. Raises UIError with what to tell the person."""
    query = (query or "").strip()
    if not query:
        raise UIError("Enter a query: the question or search the documents are ranked against.")
    documents = split_documents(documents_text)
    if not documents:
        raise UIError("Add at least one document: one per line, or upload a .txt or .jsonl file.")
    n = parse_top_n(top_n)
    start = time.perf_counter()
    try:
        ranking = await asyncio.wait_for(
            backend.rerank(
                query,
                documents,
                instruction=(instruction or "").strip() or None,
                top_n=n,
                api_key=(api_key or "").strip() or None,
            ),
            timeout,
        )
    except asyncio.TimeoutError:
        raise UIError(f"No answer after {timeout:.0f} s: the server is busy or stuck; try again.") from None
    return present(ranking, documents, time.perf_counter() - start)


# -- backends ----------------------------------------------------------------------------------------


class EngineBackend:
    """Scores with the engine of the server the UI is mounted in. When the server has API keys, the page
    asks for one and checks it here: the gate lets /ui through because a browser sends no bearer header."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        s = state.settings
        self.needs_key = bool(s.api_keys)
        self.default_instruction = s.instruction or DEFAULT_INSTRUCTION

    def describe(self) -> str:
        return f"model <code>{html.escape(self.state.settings.model_name)}</code>"

    async def rerank(
        self,
        query: str,
        documents: list[str],
        *,
        instruction: str | None,
        top_n: int | None,
        api_key: str | None,
    ) -> Ranking:
        from rerankd.errors import RerankdError
        from rerankd.ranking import rank
        from rerankd.server.gate import key_matches
        from rerankd.server.routes.rerank import check_limits

        s = self.state.settings
        if s.api_keys:
            if not api_key:
                raise UIError("This server needs an API key: enter it in the API key field.")
            if not key_matches(api_key, s.api_keys):
                raise UIError("401: the API key was not accepted. Check the key and try again.")
        try:
            engine = self.state.require_engine()
            check_limits(self.state, query, len(documents))
            scored = await engine.rerank_scores(query, documents, instruction=instruction)
            ranked = rank(scored.scores, top_n=top_n)
        except RerankdError as e:
            raise UIError(e.message) from None
        return Ranking(tuple((r.index, r.score) for r in ranked), s.model_name, scored.prompt_tokens or None)


class ClientBackend:
    """Scores through `rerankd.client.RerankClient` against any rerankd server. A key given on the
    command line is used when the page's key field is empty (and never sent to the browser)."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.needs_key = api_key is None
        self.default_instruction = DEFAULT_INSTRUCTION
        self.model: str | None = None

    def describe(self) -> str:
        where = f"server <code>{html.escape(self.url)}</code>"
        return f"model <code>{html.escape(self.model)}</code> · {where}" if self.model else where

    def _client(self, api_key: str | None) -> Any:
        """A client that retries once (a restart, a 503 while loading) and gives up within `timeout`."""
        import rerankd.client as client_module

        wanted: dict[str, Any] = {"timeout": self.timeout}
        policy = getattr(client_module, "RetryPolicy", None)
        if policy is not None:
            wanted["retry"] = policy(max_retries=1, max_delay=2.0, max_retry_after=5.0, deadline=self.timeout)
        else:
            wanted["max_retries"] = 1
        try:
            accepted = inspect.signature(client_module.RerankClient).parameters
            kwargs = {k: v for k, v in wanted.items() if k in accepted}
        except (TypeError, ValueError):
            kwargs = {}
        return client_module.RerankClient(self.url, api_key=api_key, **kwargs)

    def _rerank_sync(
        self, query: str, documents: list[str], instruction: str | None, top_n: int | None, key: str | None
    ) -> Ranking:
        client = self._client(key)
        try:
            result = client.rerank(query, documents, top_n=top_n, instruction=instruction)
        finally:
            close = getattr(client, "close", None)
            if callable(close):
                close()
        prompt_tokens = getattr(getattr(result, "usage", None), "prompt_tokens", None)
        return Ranking(tuple((r.index, r.score) for r in result), result.model, prompt_tokens or None)

    def fetch_model(self) -> str | None:
        """The served model's name (for the page header); None when the server can't say yet."""
        try:
            client = self._client(self.api_key)
            try:
                models = client.models()
            finally:
                close = getattr(client, "close", None)
                if callable(close):
                    close()
        except Exception:
            return None
        name = _first_model_name(models)
        if name:
            self.model = name
        return name

    async def rerank(
        self,
        query: str,
        documents: list[str],
        *,
        instruction: str | None,
        top_n: int | None,
        api_key: str | None,
    ) -> Ranking:
        from rerankd.client import errors

        key = api_key or self.api_key
        try:
            ranking = await asyncio.to_thread(self._rerank_sync, query, documents, instruction, top_n, key)
        except errors.AuthenticationError as e:
            if key:
                raise UIError(
                    f"{e.status or 401}: the server did not accept the API key. Check it and try again."
                ) from None
            raise UIError(
                f"{e.status or 401}: the server at {self.url} needs an API key: enter it in the API key "
                "field (or start `rerankd ui` with --api-key)."
            ) from None
        except errors.ConnectionError:
            raise UIError(
                f"Could not reach the rerankd server at {self.url}: is it running, and is the URL right?"
            ) from None
        except errors.TimeoutError:
            raise UIError(f"The server at {self.url} did not answer in time; try again.") from None
        except errors.NotFoundError:
            raise UIError(
                f"{self.url} answered 404: is it the base URL of a rerankd server (no /v1/rerank)?"
            ) from None
        except errors.ClientError as e:
            raise UIError(str(e)) from None
        if ranking.model:
            self.model = ranking.model
        return ranking


def _first_model_name(models: Any) -> str | None:
    """`RerankClient.models()` answers a list of ids, of objects with `.id`, or the raw /v1/models body."""
    if isinstance(models, dict):
        models = models.get("data", [])
    for m in models or []:
        if isinstance(m, str):
            return m
        name = m.get("id") if isinstance(m, dict) else getattr(m, "id", None)
        if name:
            return str(name)
    return None
