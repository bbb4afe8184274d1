"""The UI's logic without a browser (fast; no model, no Gradio, no torch): the form, presentation, and
ranking through a Backend, both over a plain AsyncReranker and as `rerankd serve` wires it (an
AsyncRerankClient into the server's own app, over the torch-free FakeScorer)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from rerankd.cli.serve import ui_backend
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.testing.servers import free_port
from rerankd.types import RankedDocument, RerankResult, Usage
from rerankd.ui.core import (
    EXAMPLES,
    Backend,
    UIError,
    client_backend,
    parse_top_n,
    read_upload,
    run_ranking,
    split_documents,
    table_html,
)


def test_importing_the_ui_and_the_cli_stays_light() -> None:
    code = (
        "import sys, rerankd, rerankd.ui, rerankd.ui.core, rerankd.ui.render, rerankd.ui.examples,"
        " rerankd.ui.mount, rerankd.cli\n"
        "heavy = [m for m in ('gradio', 'torch', 'pandas', 'fastapi') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_split_documents() -> None:
    assert split_documents(" a \n\n b\n   \nc") == ["a", "b", "c"]
    assert split_documents("") == [] and split_documents(None) == []


def test_read_upload_txt_and_jsonl(tmp_path: Path) -> None:
    txt = tmp_path / "docs.txt"
    txt.write_text("first\n\nsecond\n", encoding="utf-8")
    assert read_upload(txt) == ["first", "second"]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"id": 1, "text": "one\\nline"}\n\n{"text": "两"}\n', encoding="utf-8")
    assert read_upload(jsonl) == ["one line", "两"]


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"text": 1}\n', '"text" field'), ("{not json\n", "line 1: not valid JSON"), ('["a"]\n', "line 1")],
)
def test_read_upload_bad_jsonl(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UIError, match=message):
        read_upload(path)


def test_read_upload_binary(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(UIError, match="not UTF-8"):
        read_upload(path)


@pytest.mark.parametrize(("value", "want"), [(None, None), ("", None), (0, None), (3, 3), (2.0, 2)])
def test_parse_top_n(value: Any, want: int | None) -> None:
    assert parse_top_n(value) == want


@pytest.mark.parametrize("value", [-1, 1.5, "x"])
def test_parse_top_n_rejects(value: Any) -> None:
    with pytest.raises(UIError, match="top_n"):
        parse_top_n(value)


def test_table_escapes_documents() -> None:
    out = table_html([[1, 0.5, 0, "<script>alert(1)</script>"]])
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert table_html([]) == ""


def test_examples_are_complete() -> None:
    assert len(EXAMPLES) >= 3
    chinese = EXAMPLES[0]
    assert chinese.query == "如何实现Python中的异步爬虫?"
    docs = split_documents(chinese.documents)
    assert len(docs) == 3 and "asyncio" in docs[1] and "requests" in docs[0] and "pandas" in docs[2]
    assert all(e.instruction and split_documents(e.documents) for e in EXAMPLES)


class FakeReranker:
    """An AsyncReranker with fixed scores per document index."""

    def __init__(self, scores: list[float], delay: float = 0.0) -> None:
        self.scores = scores
        self.delay = delay
        self.calls: list[dict[str, Any]] = []

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        instruction: str | None = None,
    ) -> RerankResult:
        self.calls.append({"query": query, "documents": list(documents), "instruction": instruction})
        await asyncio.sleep(self.delay)
        order = sorted(range(len(documents)), key=lambda i: -self.scores[i])[:top_n]
        results = tuple(RankedDocument(index=i, score=self.scores[i]) for i in order)
        return RerankResult(results=results, model="fake-model", usage=Usage(prompt_tokens=42))


def fake_backend(reranker: FakeReranker, **kw: Any) -> tuple[Backend, list[str | None]]:
    keys: list[str | None] = []

    def connect(key: str | None) -> FakeReranker:
        keys.append(key)
        return reranker

    return Backend(connect, where="fake", needs_key=False, **kw), keys


async def test_run_ranking_presents_the_ranking() -> None:
    reranker = FakeReranker([0.1, 0.9, 0.5])
    backend, _ = fake_backend(reranker)
    shown = await run_ranking(backend, " q ", "a\nb\n\nc", "  ", 2, "")
    assert [row[2] for row in shown.rows] == [1, 2]
    assert [row[0] for row in shown.rows] == [1, 2]
    assert shown.rows[0][3] == "b"
    assert "top <b>2</b> of <b>3</b>" in shown.status and "fake-model" in shown.status
    assert "42 tokens" in shown.status and " ms" in shown.status
    assert reranker.calls[0]["query"] == "q" and reranker.calls[0]["instruction"] is None
    assert [label for label, _ in shown.chart] == ["[1] b", "[2] c"]
    assert backend.model == "fake-model" and "fake-model" in backend.describe()


async def test_one_reranker_per_key_for_the_page_lifetime() -> None:
    backend, keys = fake_backend(FakeReranker([0.5]), default_key="cli-key")
    for typed in (None, "", None, "k2", "k2"):
        await run_ranking(backend, "q", "a", None, None, typed)
    assert keys == ["cli-key", "k2"], "one reranker per key, not one per click"


@pytest.mark.parametrize(
    ("query", "docs", "message"),
    [("", "a", "Enter a query"), ("  ", "a", "Enter a query"), ("q", "\n \n", "at least one document")],
)
async def test_run_ranking_refuses_empty_input(query: str, docs: str, message: str) -> None:
    reranker = FakeReranker([0.5])
    with pytest.raises(UIError, match=message):
        await run_ranking(fake_backend(reranker)[0], query, docs, None, None, None)
    assert reranker.calls == []


async def test_run_ranking_never_hangs() -> None:
    backend, _ = fake_backend(FakeReranker([0.5], delay=5))
    with pytest.raises(UIError, match="No answer after"):
        await run_ranking(backend, "q", "a", None, None, None, timeout=0.05)


@asynccontextmanager
async def mounted(fake_engine: Any, **settings: Any) -> AsyncIterator[Backend]:
    """The backend `rerankd serve` gives its UI, into a running app over the fake engine."""
    app = create_app(ServerSettings(**{"model": "m", "ui": False, **settings}), engine=fake_engine)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.loading, 30)
        yield ui_backend(app, app.state.rerankd.settings)


async def test_mounted_ui_goes_through_the_servers_key_check(fake_engine: Any) -> None:
    async with mounted(fake_engine, api_keys=("k1", "k2")) as backend:
        assert backend.needs_key
        with pytest.raises(UIError, match="401: this server needs an API key"):
            await backend.rerank("q", ["a", "b"], instruction=None, top_n=None, api_key=None)
        with pytest.raises(UIError, match="401: the server did not accept the API key"):
            await backend.rerank("q", ["a", "b"], instruction=None, top_n=None, api_key="nope")
        result = await backend.rerank(
            "capital of France",
            ["bananas", "Paris is the capital of France"],
            instruction="i",
            top_n=1,
            api_key="k2",
        )
        assert result.indices == [1] and result.model == "m" and result.usage.prompt_tokens > 0


async def test_mounted_ui_meets_the_servers_limits(fake_engine: Any) -> None:
    async with mounted(fake_engine, max_docs_per_request=1) as backend:
        assert not backend.needs_key
        with pytest.raises(UIError, match="limit of 1"):
            await backend.rerank("q", ["a", "b"], instruction=None, top_n=None, api_key=None)


async def test_mounted_ui_while_loading() -> None:
    app = create_app(ServerSettings(model="m", ui=False))  # lifespan not run: the model never loads
    backend = ui_backend(app, app.state.rerankd.settings)
    with pytest.raises(UIError, match="503"):
        await backend.rerank("q", ["a"], instruction=None, top_n=None, api_key=None)


def test_mounted_ui_prefills_the_servers_instruction(fake_engine: Any) -> None:
    app = create_app(ServerSettings(model="m", instruction="Find code", ui=False), engine=fake_engine)
    backend = ui_backend(app, app.state.rerankd.settings)
    assert backend.default_instruction == "Find code" and backend.model == "m"


async def test_client_backend_unreachable() -> None:
    backend = client_backend(f"http://127.0.0.1:{free_port()}", timeout=5)
    assert backend.needs_key
    with pytest.raises(UIError, match="Could not reach"):
        await backend.rerank("q", ["a"], instruction=None, top_n=None, api_key=None)
    assert await backend.refresh_model() is None
    assert client_backend("http://h:1/", api_key="k").needs_key is False


def test_ui_command_checks_the_url() -> None:
    from typer.testing import CliRunner

    from rerankd.cli import app

    result = CliRunner().invoke(app, ["ui", "--url", "localhost:8000"])
    assert result.exit_code == 2
    assert "--url must start with http://" in result.output
    help_text = CliRunner().invoke(app, ["ui", "--help"]).output
    assert "--api-key" in help_text and "--port" in help_text


def test_the_smoke_model_is_labelled_in_the_header() -> None:
    from rerankd.smoke import SERVED_NAME

    backend, _ = fake_backend(FakeReranker([0.5]))
    assert "smoke-test" not in backend.describe()
    backend.model = SERVED_NAME
    assert "smoke-test model: its scores mean nothing" in backend.describe()


def test_the_servers_warnings_are_shown() -> None:
    from rerankd.types import RankedDocument, RerankResult
    from rerankd.ui.render import present

    result = RerankResult(
        (RankedDocument(0, 0.9), RankedDocument(1, 0.1)),
        model="m",
        warnings=({"index": 1, "code": "truncated", "message": "document 1 was cut <to fit>"},),
    )
    status = present(result, ["a", "b"], 0.1).status
    assert "document 1 was cut &lt;to fit&gt;" in status
    assert "⚠" not in present(RerankResult((RankedDocument(0, 0.9),), model="m"), ["a"], 0.1).status


async def test_a_picked_model_keeps_its_own_instruction_when_the_box_is_unchanged() -> None:
    """The instruction box starts with the first model's; sent as is, it would override the picked
    model's own configured instruction. Unchanged it is left out; edited it is sent."""
    from rerankd.types import RerankResult

    sent: list[tuple[str | None, str | None]] = []

    class Recorder:
        def __init__(self, model: str | None) -> None:
            self.model = model

        async def rerank(self, query: str, documents: Any, **kw: Any) -> RerankResult:
            sent.append((self.model, kw.get("instruction")))
            return RerankResult(results=(), model=self.model or "")

    backend = Backend(
        lambda key, model=None: Recorder(model),
        where="in-process",
        needs_key=False,
        default_instruction="first model's",
        models=("a", "b"),
    )
    for instruction in ("first model's", "my own"):
        await backend.rerank("q", ["d"], instruction=instruction, top_n=None, api_key=None, model="b")
    assert sent == [("b", None), ("b", "my own")]
