"""The server's answers against its own /openapi.json: every dialect's success body and every error body a
client can provoke validates against the schema the server publishes for that route and status. The
document is the contract clients generate code from, so a field the server sends but does not declare (or
declares but does not send) fails here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jsonschema
import pytest

from rerankd.engine.engine import RerankEngine
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.testing.asgi import app_client

DOCS = ["Beijing is the capital of China.", "Gravity attracts bodies.", "pandas is a Python library."]

# (route, body) as each dialect's own clients send them.
SUCCESSES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/rerank", {"query": "capital", "documents": DOCS, "top_n": 2, "return_documents": True}),
    ("/v1/rerank", {"query": "capital", "documents": [{"text": d, "id": i} for i, d in enumerate(DOCS)]}),
    ("/v1/rerank", {"query": "q", "documents": [{"title": "t", "body": "b"}], "rank_fields": ["title"]}),
    ("/v2/rerank", {"model": "m", "query": "capital", "documents": DOCS, "max_tokens_per_doc": 8}),
    ("/rerank", {"model": "m", "query": "capital", "documents": DOCS, "top_n": 1}),  # Jina, SiliconFlow
    ("/v1/rerank", {"query": "capital", "documents": DOCS, "truncate_prompt_tokens": -1}),  # vLLM
    ("/rerank", {"query": "capital", "texts": DOCS, "return_text": True, "raw_scores": True}),  # TEI
    ("/rerank", {"query": "capital", "texts": DOCS}),
    ("/score", {"text_1": "capital", "text_2": DOCS}),  # vLLM score
    ("/v1/score", {"text_1": ["a", "b"], "text_2": ["c", "d"]}),
    ("/score", {"queries": "capital", "items": DOCS}),  # vLLM ScoreQueriesItemsRequest
    ("/v1/score", {"data_1": ["a"], "data_2": {"content": [{"type": "text", "text": "b"}]}}),
]

FAILURES: list[tuple[str, dict[str, Any] | str, int]] = [
    ("/v1/rerank", {"documents": DOCS}, 400),  # no query
    ("/v1/rerank", {"query": "q", "documents": DOCS, "top_n": -1}, 400),
    ("/v2/rerank", "{not json", 400),
    ("/v1/rerank", {"query": "q", "documents": ["d"] * 50}, 400),  # over max_docs_per_request
    ("/v1/rerank", {"query": "q" * 300, "documents": DOCS}, 400),  # over max_query_chars
    ("/score", {"text_1": "q"}, 400),
    ("/v1/rerank", {"query": "q", "documents": ["x" * 5000]}, 413),  # over max_body_bytes
    ("/v1/rerank", {"query": "q", "documents": []}, 400),  # nothing to rank
    ("/rerank", {"query": "q", "texts": []}, 400),  # TEI: error_type Empty
    ("/rerank", {"query": "q", "texts": ["d"] * 50}, 413),  # TEI: too many texts, Validation
    ("/rerank", {"texts": DOCS}, 422),  # TEI: the body does not validate
    ("/score", {"queries": ["a", "b"], "items": ["c"]}, 400),  # vLLM: neither 1:N nor N:N
]


@asynccontextmanager
async def served(fake_engine: RerankEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = ServerSettings(
        model="m", ui=False, max_docs_per_request=10, max_query_chars=200, max_body_bytes=4096
    )
    app = create_app(settings, engine=fake_engine)
    async with app_client(app) as c:
        yield c


async def validator_for(client: httpx.AsyncClient, path: str, status: int) -> jsonschema.Validator:
    spec = (await client.get("/openapi.json")).json()
    responses = spec["paths"][path]["post"]["responses"]
    assert str(status) in responses, f"{path} does not document status {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    # Resolve the spec's $refs against the document itself.
    root = {**schema, "components": spec["components"]}
    return jsonschema.Draft202012Validator(root)


@pytest.mark.parametrize(("path", "body"), SUCCESSES, ids=[f"{p} {sorted(b)}" for p, b in SUCCESSES])
async def test_answers_validate_against_the_published_schema(
    fake_engine: RerankEngine, path: str, body: dict[str, Any]
) -> None:
    async with served(fake_engine) as client:
        r = await client.post(path, json=body)
        assert r.status_code == 200, r.text
        (await validator_for(client, path, 200)).validate(r.json())


@pytest.mark.parametrize(("path", "body", "status"), FAILURES)
async def test_error_bodies_validate_against_the_published_schema(
    fake_engine: RerankEngine, path: str, body: dict[str, Any] | str, status: int
) -> None:
    async with served(fake_engine) as client:
        if isinstance(body, str):
            r = await client.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = await client.post(path, json=body)
        assert r.status_code == status, r.text
        (await validator_for(client, path, status)).validate(r.json())
        body_out = r.json()  # a message that says what to change, not an empty body (TEI: `error`)
        assert body_out.get("message") or (path == "/rerank" and body_out["error"])


async def test_a_wrong_schema_would_be_caught(fake_engine: RerankEngine) -> None:
    """The check itself can fail: a rerank answer is not an error body."""
    async with served(fake_engine) as client:
        r = await client.post("/v1/rerank", json={"query": "q", "documents": DOCS})
        validator = await validator_for(client, "/v1/rerank", 400)
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(r.json())
