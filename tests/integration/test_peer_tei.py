"""Requests as text-embeddings-inference's (TEI) clients send them to /rerank, answers and errors checked
against TEI's own types (vendored in tests/peers/tei_types.py) and the status codes TEI's router gives.

Sources (https://github.com/huggingface/text-embeddings-inference, Apache-2.0): `router/src/http/server.rs`
(the `rerank` handler: empty `texts`, `max_client_batch_size`, `From<&ErrorType> for StatusCode`),
`router/src/http/types.rs` (RerankRequest, Rank, ErrorResponse), `core/src/tokenization.rs` (truncate
false on a too-long input is a Validation error), and the README's rerank example. TEI ships no Python
test of its HTTP API, so these mirror its router; scores compare with rerankd's library scores.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from rerankd import Reranker
from rerankd.errors import InvalidRequest, ModelLoadError, Overloaded, Unavailable
from rerankd.server.errors import NothingToRank, tei_error_response
from tests.integration.test_server import served
from tests.peers.tei_types import STATUS, ErrorResponse, RerankRequest, RerankResponse

# The README's example: curl 127.0.0.1:8080/rerank -d '{"query": ..., "texts": [...]}'
QUERY = "What is Deep Learning?"
TEXTS = ["Deep Learning is not...", "Deep learning is..."]


def tei_error(body: Any, status: int, error_type: str) -> ErrorResponse:
    err = ErrorResponse.model_validate(body)
    assert err.error_type == error_type and STATUS[error_type] == status and err.error
    return err


async def test_readme_example(qwen3_reranker: Reranker) -> None:
    body = {"query": QUERY, "texts": TEXTS}
    RerankRequest.model_validate(body)  # a body TEI's own type accepts
    async with served(qwen3_reranker) as c:
        r = await c.post("/rerank", json=body)
    assert r.status_code == 200
    ranks = RerankResponse.model_validate(r.json()).root
    expected = qwen3_reranker.score(QUERY, TEXTS)
    assert [x.index for x in ranks] == sorted(range(2), key=lambda i: -expected[i])  # sorted by score
    assert [x.score for x in ranks] == pytest.approx(sorted(expected, reverse=True), abs=1e-6)
    assert all(x.text is None for x in ranks) and all("text" not in x for x in r.json())


async def test_every_request_field(qwen3_reranker: Reranker) -> None:
    body = {
        "query": QUERY,
        "texts": TEXTS,
        "truncate": True,
        "truncation_direction": "Right",
        "raw_scores": True,
        "return_text": True,
    }
    RerankRequest.model_validate(body)
    async with served(qwen3_reranker) as c:
        r = await c.post("/rerank", json=body)
    assert r.status_code == 200, r.text
    ranks = RerankResponse.model_validate(r.json()).root
    expected = qwen3_reranker.score(QUERY, TEXTS)
    for x in ranks:
        assert x.text == TEXTS[x.index]
        assert x.score == pytest.approx(math.log(expected[x.index] / (1 - expected[x.index])), abs=1e-4)


async def test_empty_texts_is_400_empty(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker) as c:
        r = await c.post("/rerank", json={"query": QUERY, "texts": []})
    assert r.status_code == 400
    assert tei_error(r.json(), 400, "Empty").error == "`texts` cannot be empty"  # TEI's message


async def test_too_many_texts_is_413_validation(qwen3_reranker: Reranker) -> None:
    """TEI: batch size > max_client_batch_size; rerankd's --max-docs-per-request."""
    async with served(qwen3_reranker, max_docs_per_request=2) as c:
        r = await c.post("/rerank", json={"query": QUERY, "texts": TEXTS * 2})
    assert r.status_code == 413
    assert "limit of 2" in tei_error(r.json(), 413, "Validation").error


async def test_truncate_false_on_a_long_input_is_413_validation(qwen3_dir: Path) -> None:
    small = Reranker.from_pretrained(str(qwen3_dir), device="cpu", max_length=100)
    async with served(small) as c:
        r = await c.post("/rerank", json={"query": QUERY, "texts": ["word " * 300], "truncate": False})
        ok = await c.post("/rerank", json={"query": QUERY, "texts": ["word " * 300], "truncate": True})
    assert r.status_code == 413
    assert "truncate" in tei_error(r.json(), 413, "Validation").error
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"texts": TEXTS},  # no query
        {"query": QUERY, "texts": [1, 2]},
        {"query": QUERY, "texts": TEXTS, "raw_scores": "maybe"},
    ],
)
async def test_a_body_that_does_not_validate_is_422(qwen3_reranker: Reranker, body: dict[str, Any]) -> None:
    """TEI's Json extractor answers 422 for a body its RerankRequest refuses."""
    async with served(qwen3_reranker) as c:
        r = await c.post("/rerank", json=body)
    assert r.status_code == 422, r.text
    assert ErrorResponse.model_validate(r.json()).error_type == "Validation"


async def test_queue_full_is_429_overloaded(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker, max_queue=6) as c:
        texts = [f"text {i} " + "about deep learning " * 40 for i in range(4)]
        first = asyncio.create_task(c.post("/rerank", json={"query": QUERY, "texts": texts}))
        while c.app.state.rerankd.engine.depth == 0:  # type: ignore[attr-defined]
            await asyncio.sleep(0.001)
        second = await c.post("/rerank", json={"query": QUERY, "texts": texts})
        assert (await first).status_code == 200
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    tei_error(second.json(), 429, "Overloaded")


async def test_loading_is_503_unhealthy(qwen3_dir: Path) -> None:
    async with served(None, wait=False, model=str(qwen3_dir), device="cpu") as c:
        r = await c.post("/rerank", json={"query": QUERY, "texts": TEXTS})
        await asyncio.wait_for(c.app.state.loading, 60)  # type: ignore[attr-defined]
    assert r.status_code == 503
    tei_error(r.json(), 503, "Unhealthy")


async def test_other_dialects_keep_rerankd_errors(qwen3_reranker: Reranker) -> None:
    """TEI's body only on /rerank with `texts`: a Cohere body there, or `texts` on /v1/rerank, keeps
    rerankd's error body."""
    async with served(qwen3_reranker) as c:
        cohere = await c.post("/rerank", json={"query": QUERY, "documents": []})
        v1 = await c.post("/v1/rerank", json={"query": QUERY, "texts": []})
        missing = await c.post("/rerank", json={"documents": TEXTS})
    for r in (cohere, v1, missing):
        assert r.status_code == 400 and r.json()["error"]["message"] == r.json()["message"]


def test_error_types_and_statuses() -> None:
    """Each rerankd error becomes TEI's error type and TEI's status for it (Backend: 424)."""
    cases = [
        (NothingToRank("none"), "Empty"),
        (InvalidRequest("bad"), "Validation"),
        (Overloaded("full", retry_after=2), "Overloaded"),
        (Unavailable("loading"), "Unhealthy"),
        (ModelLoadError("broken"), "Backend"),
    ]
    for exc, kind in cases:
        r = tei_error_response(exc)
        tei_error(json.loads(bytes(r.body)), r.status_code, kind)
