"""meta.warnings: every rerank answer says which documents were cut to fit (tokens kept of tokens sent),
which were split into chunks (how many), and which request fields this server ignored; machine-readable
({index, code, message}) and absent when nothing was degraded. With the real tiny Qwen3 model and the
real yes/no scorer, so the token counts are the tokenizer's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from rerankd import Reranker
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.testing.asgi import app_client

SHORT = "Beijing is the capital of China."
LONG = " ".join(["Paris is the capital of France and a city of art."] * 40)


@asynccontextmanager
async def served(reranker: Reranker) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ServerSettings(model="tiny", ui=False), reranker=reranker)
    async with app_client(app) as client:
        yield client


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/rerank", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def test_nothing_degraded_means_no_warnings(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker) as client:
        answer = await post(client, {"query": "capital", "documents": [SHORT, "Gravity."]})
    assert answer["meta"]["warnings"] == []


async def test_a_cut_document_is_named_with_its_token_counts(qwen3_dir: Any) -> None:
    small = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32", max_length=128)
    async with served(small) as client:
        answer = await post(client, {"query": "capital", "documents": [SHORT, LONG]})
    (warning,) = answer["meta"]["warnings"]
    assert warning["index"] == 1 and warning["code"] == "truncated"
    encoded = small.scorer.encode("capital", LONG)
    assert encoded.truncated and encoded.sent_tokens is not None
    assert f"{len(encoded)} of {encoded.sent_tokens} tokens kept" in warning["message"]
    assert len(encoded) == 128 < encoded.sent_tokens


async def test_chunks_and_ignored_fields_are_reported(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker) as client:
        body = {
            "query": "capital",
            "documents": [SHORT, LONG],
            "max_chunks_per_doc": 4,
            "max_tokens_per_doc": 64,
            "return_highlights": True,  # not a field this server reads
        }
        answer = await post(client, body)
    codes = [(w.get("index"), w["code"]) for w in answer["meta"]["warnings"]]  # null index: omitted
    assert (1, "chunked") in codes and (0, "chunked") not in codes
    assert (None, "ignored_field") in codes
    chunked = next(w for w in answer["meta"]["warnings"] if w["code"] == "chunked")
    assert "split into 4 chunks" in chunked["message"]
    assert any("'return_highlights'" in w["message"] for w in answer["meta"]["warnings"])


async def test_the_client_exposes_them_with_global_indices(qwen3_dir: Any) -> None:
    """Sliced into requests of two documents, the cut document (the fourth) keeps its index."""
    from rerankd.client import AsyncRerankClient

    small = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32", max_length=128)
    app = create_app(ServerSettings(model="tiny", ui=False), reranker=small)
    async with app.router.lifespan_context(app):
        await app.state.loading
        client = AsyncRerankClient(
            "http://rerankd", transport=httpx.ASGITransport(app=app), max_docs_per_request=2
        )
        async with client:
            result = await client.rerank("capital", [SHORT, "Gravity.", "Rome.", LONG])
    assert [(w["index"], w["code"]) for w in result.warnings] == [(3, "truncated")]
