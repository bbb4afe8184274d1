"""The UI's logic without a browser (fast; no model, no Gradio): inputs, presentation, both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rerankd.errors import Unavailable
from rerankd.server.settings import ServerSettings
from rerankd.testing.servers import free_port
from rerankd.ui.core import (
    EXAMPLES,
    ClientBackend,
    EngineBackend,
    Ranking,
    UIError,
    parse_top_n,
    read_upload,
    run_ranking,
    split_documents,
    table_html,
)


def test_importing_the_ui_and_the_cli_stays_light() -> None:
    code = (
        "import sys, rerankd, rerankd.ui, rerankd.ui.core, rerankd.ui.cli, rerankd.ui.mount, rerankd.cli\n"
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


class FakeBackend:
    needs_key = False
    default_instruction = "x"

    def __init__(self, scores: list[float], delay: float = 0.0) -> None:
        self.scores = scores
        self.delay = delay
        self.calls: list[dict[str, Any]] = []

    def describe(self) -> str:
        return "fake"

    async def rerank(self, query: str, documents: list[str], **kw: Any) -> Ranking:
        self.calls.append({"query": query, "documents": documents, **kw})
        await asyncio.sleep(self.delay)
        order = sorted(range(len(documents)), key=lambda i: -self.scores[i])[: kw["top_n"]]
        return Ranking(tuple((i, self.scores[i]) for i in order), "fake-model", 42)


async def test_run_ranking_presents_the_ranking() -> None:
    backend = FakeBackend([0.1, 0.9, 0.5])
    shown = await run_ranking(backend, " q ", "a\nb\n\nc", "  ", 2, "")
    assert [row[2] for row in shown.rows] == [1, 2]
    assert [row[0] for row in shown.rows] == [1, 2]
    assert shown.rows[0][3] == "b"
    assert "top <b>2</b> of <b>3</b>" in shown.status and "fake-model" in shown.status
    assert "42 tokens" in shown.status and " ms" in shown.status
    assert backend.calls[0]["query"] == "q"
    assert backend.calls[0]["instruction"] is None and backend.calls[0]["api_key"] is None
    assert [label for label, _ in shown.chart] == ["[1] b", "[2] c"]


@pytest.mark.parametrize(
    ("query", "docs", "message"),
    [("", "a", "Enter a query"), ("  ", "a", "Enter a query"), ("q", "\n \n", "at least one document")],
)
async def test_run_ranking_refuses_empty_input(query: str, docs: str, message: str) -> None:
    backend = FakeBackend([0.5])
    with pytest.raises(UIError, match=message):
        await run_ranking(backend, query, docs, None, None, None)
    assert backend.calls == []


async def test_run_ranking_never_hangs() -> None:
    with pytest.raises(UIError, match="No answer after"):
        await run_ranking(FakeBackend([0.5], delay=5), "q", "a", None, None, None, timeout=0.05)


@dataclass
class FakeScored:
    scores: list[float]
    prompt_tokens: int = 7
    truncated: int = 0


@dataclass
class FakeEngine:
    seen: list[Any] = field(default_factory=list)

    async def rerank_scores(self, query: str, documents: list[str], *, instruction: str | None = None) -> Any:
        self.seen.append((query, documents, instruction))
        return FakeScored([0.2, 0.8][: len(documents)])


@dataclass
class FakeState:
    settings: ServerSettings
    engine: FakeEngine | None = None

    def require_engine(self) -> FakeEngine:
        if self.engine is None:
            raise Unavailable("the model is still loading; retry shortly")
        return self.engine


async def test_engine_backend_checks_the_key() -> None:
    state = FakeState(ServerSettings(model="m", api_keys=("k1", "k2")), FakeEngine())
    backend = EngineBackend(state)  # type: ignore[arg-type]
    assert backend.needs_key
    with pytest.raises(UIError, match="needs an API key"):
        await backend.rerank("q", ["a", "b"], instruction=None, top_n=None, api_key=None)
    with pytest.raises(UIError, match="401"):
        await backend.rerank("q", ["a", "b"], instruction=None, top_n=None, api_key="nope")
    assert state.engine is not None and state.engine.seen == []
    ranking = await backend.rerank("q", ["a", "b"], instruction="i", top_n=1, api_key="k2")
    assert ranking.results == ((1, 0.8),) and ranking.model == "m" and ranking.prompt_tokens == 7
    assert state.engine.seen == [("q", ["a", "b"], "i")]


async def test_engine_backend_while_loading_and_over_limits() -> None:
    loading = EngineBackend(FakeState(ServerSettings(model="m")))  # type: ignore[arg-type]
    assert not loading.needs_key
    with pytest.raises(UIError, match="still loading"):
        await loading.rerank("q", ["a"], instruction=None, top_n=None, api_key=None)
    small = EngineBackend(FakeState(ServerSettings(model="m", max_docs_per_request=1), FakeEngine()))  # type: ignore[arg-type]
    with pytest.raises(UIError, match="limit of 1"):
        await small.rerank("q", ["a", "b"], instruction=None, top_n=None, api_key=None)


def test_engine_backend_prefills_the_servers_instruction() -> None:
    backend = EngineBackend(FakeState(ServerSettings(model="m", instruction="Find code")))  # type: ignore[arg-type]
    assert backend.default_instruction == "Find code"


async def test_client_backend_unreachable() -> None:
    pytest.importorskip("rerankd.client", reason="the HTTP client has not landed")
    backend = ClientBackend(f"http://127.0.0.1:{free_port()}", timeout=5)
    assert backend.needs_key
    with pytest.raises(UIError, match="Could not reach"):
        await backend.rerank("q", ["a"], instruction=None, top_n=None, api_key=None)
    assert backend.fetch_model() is None
    assert ClientBackend("http://h:1/", api_key="k").needs_key is False


def test_ui_command_checks_the_url() -> None:
    from typer.testing import CliRunner

    from rerankd.cli import app

    result = CliRunner().invoke(app, ["ui", "--url", "localhost:8000"])
    assert result.exit_code == 2
    assert "--url must start with http://" in result.output
    help_text = CliRunner().invoke(app, ["ui", "--help"]).output
    assert "--api-key" in help_text and "--port" in help_text
