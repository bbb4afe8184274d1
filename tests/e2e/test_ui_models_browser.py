"""The web UI's model picker in a real browser: `rerankd serve` with a tiny Qwen3 reranker and a tiny
cross-encoder; the page (mounted at /ui) offers both, and a ranking with the picked one is that
model's ranking through the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rerankd.templates import DEFAULT_INSTRUCTION
from rerankd.testing.servers import RunningServer, rerankd_server
from tests.e2e.test_ui_browser import (
    DOCUMENTS,
    QUERY,
    assert_same_ranking,
    fill_form,
    open_ui,
    rank_and_expect,
    read_table,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_models(
    qwen3_dir: Path, cross_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> Iterator[RunningServer]:
    names = ["--served-model-name", "qwen", "--served-model-name", "ce"]
    with rerankd_server(
        qwen3_dir, "--model", str(cross_encoder_dir), *names, log_dir=tmp_path_factory.mktemp("ui-models")
    ) as server:
        yield server


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def api_ranking(server: RunningServer, model: str) -> list[dict[str, Any]]:
    r = httpx.post(
        f"{server.url}/v1/rerank",
        # The page sends its instruction box's value, the default instruction.
        json={"model": model, "query": QUERY, "documents": DOCUMENTS, "instruction": DEFAULT_INSTRUCTION},
        timeout=60,
    )
    r.raise_for_status()
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def test_the_picked_model_ranks(two_models: RunningServer, page: Any, output_dir: Path) -> None:
    open_ui(page, f"{two_models.url}/ui/")
    header = page.locator("#rr-header").inner_text()
    assert "qwen" in header and "ce" in header
    picker = page.locator("#rr-model input")
    assert picker.input_value() == "qwen"
    fill_form(page, QUERY, DOCUMENTS)
    rank_and_expect(page, "model qwen")
    assert_same_ranking(read_table(page, len(DOCUMENTS)), api_ranking(two_models, "qwen"), DOCUMENTS)

    picker.click()
    page.get_by_role("option", name="ce", exact=True).click()
    assert picker.input_value() == "ce"
    rank_and_expect(page, "model ce")
    page.screenshot(path=str(output_dir / "ui-model-picker.png"), full_page=True)
    assert_same_ranking(read_table(page, len(DOCUMENTS)), api_ranking(two_models, "ce"), DOCUMENTS)
