"""The web UI in a real browser, used as a person would: type, click, read the table.

One `rerankd serve --api-key` process (tiny generated Qwen3 model, the UI mounted at /ui) and one
`rerankd ui --url` process against it are shared by the whole module: Gradio is slow to start. The last
test stops the server, so it stays last."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rerankd.templates import DEFAULT_INSTRUCTION
from rerankd.testing.servers import RunningServer, rerankd_server, wait_until_ready
from rerankd.ui.core import SPAN_TOKENS
from tests.e2e.conftest import UIProcess, standalone_ui, wait_until_up

pytestmark = pytest.mark.e2e

KEY = "e2e-secret-key"
QUERY = "What is the capital of China?"
DOCUMENTS = [
    "Beijing is the capital of the People's Republic of China.",
    "Gravity is the force that attracts masses toward each other.",
    "Shanghai is the largest city in China by population.",
    "Paris is the capital and most populous city of France.",
    "The Great Wall of China is thousands of kilometres long.",
]
TIMEOUT_MS = 30_000
ROWS = "#rr-results tbody tr"


@dataclass
class Stack:
    server: RunningServer
    ui: UIProcess


@pytest.fixture(scope="module")
def stack(qwen3_dir: Path, tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Stack]:
    """The server and the standalone UI start side by side; both must be up before the first test."""
    logs = tmp_path_factory.mktemp("ui-logs")
    with rerankd_server(qwen3_dir, "--api-key", KEY, log_dir=logs, wait_ready=False) as server:
        ui_process = standalone_ui(server.url, log_dir=logs)
        with ui_process as ui:
            wait_until_ready(server)
            wait_until_up(ui)
            yield Stack(server, ui)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh desktop-sized page that can reach nothing but this machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", _local_only)
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def _local_only(route: Any) -> None:
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "http://localhost", "data:", "blob:")):
        route.continue_()
    else:
        route.abort()


def open_ui(page: Any, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#rr-rank").wait_for(state="visible")


def fill_form(page: Any, query: str, documents: list[str], key: str | None = None) -> None:
    page.locator("#rr-query textarea").fill(query)
    page.locator("#rr-documents textarea").fill("\n".join(documents))
    if key is not None:
        page.locator("#rr-api-key input").fill(key)


def rank_and_expect(page: Any, text: str) -> str:
    """Click Rank and wait until the status line says `text`; returns the status line."""
    from playwright.sync_api import expect

    page.locator("#rr-rank").click()
    status = page.locator("#rr-status")
    expect(status).to_contain_text(text)
    return str(status.inner_text())


def read_table(page: Any, n_rows: int) -> list[list[str]]:
    from playwright.sync_api import expect

    rows = page.locator(ROWS)
    expect(rows).to_have_count(n_rows)
    cells: list[list[str]] = rows.evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim()))"
    )
    return cells


def expect_chart(page: Any, n_bars: int) -> None:
    """The bar chart drew one bar per ranked document (Vega renders it after the table)."""
    from playwright.sync_api import expect

    expect(page.locator("#rr-chart svg.marks .mark-rect path")).to_have_count(n_bars)


def api_ranking(server: RunningServer, query: str, documents: list[str]) -> list[dict[str, Any]]:
    r = httpx.post(
        f"{server.url}/v1/rerank",
        json={"query": query, "documents": documents, "instruction": DEFAULT_INSTRUCTION},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    r.raise_for_status()
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def assert_same_ranking(table: list[list[str]], expected: list[dict[str, Any]], documents: list[str]) -> None:
    assert [int(row[2]) for row in table] == [r["index"] for r in expected]
    assert [int(row[0]) for row in table] == list(range(1, len(expected) + 1))
    for row, want in zip(table, expected, strict=True):
        assert abs(float(row[1]) - want["relevance_score"]) < 2e-4
        assert row[3] == documents[want["index"]]


def test_rank_in_browser_matches_the_api(stack: Stack, page: Any, output_dir: Path) -> None:
    open_ui(page, f"{stack.server.url}/ui/")
    instruction = page.locator("#rr-instruction textarea")
    assert instruction.input_value() == DEFAULT_INSTRUCTION
    fill_form(page, QUERY, DOCUMENTS, key=KEY)
    status = rank_and_expect(page, "Ranked")
    table = read_table(page, len(DOCUMENTS))
    expect_chart(page, len(DOCUMENTS))
    page.screenshot(path=str(output_dir / "ui-desktop.png"), full_page=True)

    assert_same_ranking(table, api_ranking(stack.server, QUERY, DOCUMENTS), DOCUMENTS)
    assert " ms" in status and "model" in status
    assert "tiny-qwen3-reranker" in page.locator("#rr-header").inner_text()


def test_spans_are_highlighted_when_asked(stack: Stack, page: Any, output_dir: Path) -> None:
    """With "show relevant spans" ticked, each row's spans appear as <mark>s inside its document, at
    the offsets the API gives; unticked, no row has any."""
    from playwright.sync_api import expect

    docs = [*DOCUMENTS[:2], ("Paris <b>not bold</b> is the capital of France & more. " * 6).strip()]
    open_ui(page, f"{stack.server.url}/ui/")
    fill_form(page, QUERY, docs, key=KEY)
    rank_and_expect(page, "Ranked")
    read_table(page, len(docs))
    assert page.locator("#rr-results mark").count() == 0

    page.locator("#rr-spans input").check()
    rank_and_expect(page, "Ranked")
    table = read_table(page, len(docs))
    marks = page.locator("#rr-results mark.rr-span")
    expect(marks.first).to_be_visible()
    page.screenshot(path=str(output_dir / "ui-spans.png"), full_page=True)
    # The table's text is still the document itself: the marks only wrap parts of it, escaped.
    assert sorted(row[3] for row in table) == sorted(docs)
    assert page.locator("#rr-results b").count() == 0
    r = httpx.post(
        f"{stack.server.url}/v1/rerank",
        json={
            "query": QUERY,
            "documents": docs,
            "instruction": DEFAULT_INSTRUCTION,
            "return_spans": True,
            "span_tokens": SPAN_TOKENS,
        },
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    r.raise_for_status()
    api = r.json()["results"]
    per_row: list[list[str]] = page.locator(ROWS).evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('mark.rr-span')].map(m => m.textContent))"
    )
    for row, want in zip(per_row, api, strict=True):
        assert sorted(row) == sorted(s["text"] for s in want["spans"])
    assert sum(len(row) for row in per_row) == marks.count() > 0


def test_phone_viewport(stack: Stack, browser: Any, output_dir: Path) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", _local_only)
    try:
        page = context.new_page()
        open_ui(page, f"{stack.server.url}/ui/")
        fill_form(page, QUERY, DOCUMENTS[:3], key=KEY)
        button = page.locator("#rr-rank")
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        assert box["height"] >= 40, "the button is big enough to tap"
        button.tap()
        from playwright.sync_api import expect

        expect(page.locator("#rr-status")).to_contain_text("Ranked")
        table = read_table(page, 3)
        assert_same_ranking(table, api_ranking(stack.server, QUERY, DOCUMENTS[:3]), DOCUMENTS[:3])
        results = page.locator("#rr-results")
        results.scroll_into_view_if_needed()
        rbox = results.bounding_box()
        assert rbox is not None and rbox["x"] >= 0 and rbox["x"] + rbox["width"] <= 390, rbox
        expect_chart(page, 3)
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= 390, f"the page scrolls sideways on a phone ({page_width}px wide)"
        page.screenshot(path=str(output_dir / "ui-phone.png"), full_page=True)
    finally:
        context.close()


def test_errors_show_on_the_page(stack: Stack, page: Any, output_dir: Path) -> None:
    open_ui(page, f"{stack.server.url}/ui/")
    assert page.locator("#rr-api-key input").get_attribute("type") == "password"
    rank_and_expect(page, "Enter a query")
    page.locator("#rr-query textarea").fill(QUERY)
    rank_and_expect(page, "Add at least one document")
    page.locator("#rr-documents textarea").fill("\n".join(DOCUMENTS[:2]))
    rank_and_expect(page, "needs an API key")
    page.locator("#rr-api-key input").fill("not-the-key")
    rank_and_expect(page, "401")
    assert page.locator("#rr-status .rr-error").is_visible()
    assert page.locator(ROWS).count() == 0, "no stale ranking next to an error"
    assert not page.locator("#rr-chart").is_visible()
    page.screenshot(path=str(output_dir / "ui-error.png"), full_page=True)
    # the page is still usable after the errors
    page.locator("#rr-api-key input").fill(KEY)
    rank_and_expect(page, "Ranked")
    assert len(read_table(page, 2)) == 2


def test_example_click_ranks_it(stack: Stack, page: Any) -> None:
    open_ui(page, f"{stack.server.url}/ui/")
    page.locator("#rr-api-key input").fill(KEY)
    page.locator("#rr-examples").get_by_text("Python中的异步爬虫").first.click()
    from playwright.sync_api import expect

    expect(page.locator("#rr-status")).to_contain_text("Ranked")
    assert page.locator("#rr-query textarea").input_value() == "如何实现Python中的异步爬虫?"
    table = read_table(page, 3)
    assert sorted(int(row[2]) for row in table) == [0, 1, 2]


def test_upload_jsonl(stack: Stack, page: Any, tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "\n".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in enumerate(DOCUMENTS[:4]))
        + "\n",
        encoding="utf-8",
    )
    open_ui(page, f"{stack.server.url}/ui/")
    page.locator("#rr-upload input[type=file]").set_input_files(str(path))
    from playwright.sync_api import expect

    expect(page.locator("#rr-status")).to_contain_text("Loaded 4 documents")
    assert page.locator("#rr-documents textarea").input_value().splitlines() == DOCUMENTS[:4]
    page.locator("#rr-query textarea").fill(QUERY)
    page.locator("#rr-api-key input").fill(KEY)
    page.locator("#rr-top-n input").fill("2")
    rank_and_expect(page, "top 2 of 4")
    table = read_table(page, 2)
    assert_same_ranking(table, api_ranking(stack.server, QUERY, DOCUMENTS[:4])[:2], DOCUMENTS[:4])


def test_standalone_ui_asks_for_the_key(stack: Stack, page: Any, output_dir: Path) -> None:
    """`rerankd ui --url` (no --api-key) against the server with a key: 401 on the page, then the key."""
    open_ui(page, f"{stack.ui.url}/")
    fill_form(page, QUERY, DOCUMENTS)
    rank_and_expect(page, "needs an API key")
    page.locator("#rr-api-key input").fill("wrong")
    rank_and_expect(page, "did not accept the API key")
    page.locator("#rr-api-key input").fill(KEY)
    rank_and_expect(page, "Ranked")
    table = read_table(page, len(DOCUMENTS))
    assert_same_ranking(table, api_ranking(stack.server, QUERY, DOCUMENTS), DOCUMENTS)
    assert "tiny-qwen3-reranker" in page.locator("#rr-header").inner_text()
    expect_chart(page, len(DOCUMENTS))
    page.screenshot(path=str(output_dir / "ui-standalone.png"), full_page=True)


def test_client_backend_uses_the_command_line_key(stack: Stack) -> None:
    """What `rerankd ui --url U --api-key K` does for every visitor: the page's key field is hidden."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from rerankd.types import RerankResult
    from rerankd.ui.core import client_backend

    backend = client_backend(stack.server.url, api_key=KEY)
    assert not backend.needs_key

    async def rank_then_name() -> tuple[RerankResult, str | None]:
        ranking = await backend.rerank(
            QUERY, DOCUMENTS, instruction=DEFAULT_INSTRUCTION, top_n=None, api_key=None
        )
        backend.model = None  # ask the server, as the page does when it opens
        return ranking, await backend.refresh_model()

    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread: use another one
        ranking, name = pool.submit(asyncio.run, rank_then_name()).result(timeout=60)
    expected = api_ranking(stack.server, QUERY, DOCUMENTS)
    assert ranking.indices == [r["index"] for r in expected]
    assert "tiny-qwen3-reranker" in ranking.model
    assert name == ranking.model


def test_standalone_ui_server_gone(stack: Stack, page: Any) -> None:
    """Last on purpose: stops the shared server, then the open page must say so (and not spin)."""
    open_ui(page, f"{stack.ui.url}/")
    fill_form(page, QUERY, DOCUMENTS[:2], key=KEY)
    stack.server.stop()
    rank_and_expect(page, "Could not reach")
