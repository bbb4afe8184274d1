"""The HTTP server in-process (httpx's ASGI transport): every dialect with a body as its users send it,
scores equal to the library's; errors, limits, auth, loading."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from rerankd import Reranker
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.testing.asgi import app_client

QUERY = "What is the capital of China?"
DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "北京是中华人民共和国的首都。",
    "pandas is a Python library for data analysis.",
]
SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")


@asynccontextmanager
async def served(
    reranker: Reranker | None, *, wait: bool = True, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings.setdefault("model", "tiny-qwen3")
    settings.setdefault("ui", False)
    app = create_app(ServerSettings(**settings), reranker=reranker)
    async with app_client(app, wait=wait) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def scores_by_index(results: list[dict[str, Any]], key: str = "relevance_score") -> dict[int, float]:
    return {r["index"]: r[key] for r in results}


def assert_matches_library(
    results: list[dict[str, Any]], expected: list[float], key: str = "relevance_score"
) -> None:
    got = scores_by_index(results, key)
    for i, s in got.items():
        assert s == pytest.approx(expected[i], abs=1e-6)
    assert [r[key] for r in results] == sorted((r[key] for r in results), reverse=True)


async def test_cohere_v1_strings(qwen3_reranker: Reranker) -> None:
    body = {
        "model": "rerank-english-v3.0",
        "query": QUERY,
        "documents": DOCS,
        "top_n": 3,
        "return_documents": True,
    }
    async with served(qwen3_reranker) as c:
        r = await c.post("/v1/rerank", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["results"]) == 3
    assert_matches_library(out["results"], qwen3_reranker.score(QUERY, DOCS))
    assert all(x["document"]["text"] == DOCS[x["index"]] for x in out["results"])
    assert out["meta"]["billed_units"]["search_units"] == 1 and out["meta"]["api_version"]["version"]
    assert out["usage"]["total_tokens"] > 0 and out["id"]


async def test_cohere_v1_objects_with_rank_fields(qwen3_reranker: Reranker) -> None:
    docs = [
        {"title": "Beijing", "body": DOCS[0], "id": "a"},
        {"title": "Physics", "body": DOCS[1], "id": "b"},
    ]
    body = {"query": QUERY, "documents": docs, "rank_fields": ["title", "body"], "return_documents": True}
    async with served(qwen3_reranker) as c:
        out = (await c.post("/v1/rerank", json=body)).json()
    texts = [f"title: {d['title']}\nbody: {d['body']}" for d in docs]
    assert_matches_library(out["results"], qwen3_reranker.score(QUERY, texts))
    assert {x["document"]["id"] for x in out["results"]} == {"a", "b"}


async def test_cohere_v2_max_tokens_per_doc(qwen3_reranker: Reranker) -> None:
    long_doc = "Beijing is the capital of China. " * 50
    body = {
        "model": "rerank-v3.5",
        "query": QUERY,
        "documents": [long_doc, DOCS[1]],
        "top_n": 2,
        "max_tokens_per_doc": 8,
    }
    async with served(qwen3_reranker) as c:
        out = (await c.post("/v2/rerank", json=body)).json()
    # Echoed by default (vLLM and Jina always do), as sent: the truncation only changes what is scored.
    assert out["results"][0]["document"] == {"text": long_doc}
    async with served(qwen3_reranker) as c:
        left_out = (await c.post("/v2/rerank", json={**body, "return_documents": False})).json()
    assert all("document" not in r for r in left_out["results"])  # left out, not null
    tokenizer = qwen3_reranker.scorer.tokenizer  # type: ignore[attr-defined]
    heads = [tokenizer.decode(tokenizer.encode(d, add_special_tokens=False)[:8]) for d in (long_doc, DOCS[1])]
    assert_matches_library(out["results"], qwen3_reranker.score(QUERY, heads))


async def test_jina_and_vllm_shapes(qwen3_reranker: Reranker) -> None:
    expected = qwen3_reranker.score(QUERY, DOCS)
    jina = {
        "model": "jina-reranker-v2-base-multilingual",
        "query": QUERY,
        "documents": [{"text": d} for d in DOCS],
        "top_n": 10,
        "return_documents": True,
    }
    vllm = {"model": "Qwen/Qwen3-Reranker-0.6B", "query": QUERY, "documents": DOCS, "top_n": None}
    async with served(qwen3_reranker) as c:
        for path, body in [("/v1/rerank", jina), ("/rerank", vllm), ("/v1/rerank", vllm)]:
            r = await c.post(path, json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert len(out["results"]) == len(DOCS)  # top_n 10 clamped, null means all
            assert_matches_library(out["results"], expected)
            assert out["model"] == "tiny-qwen3" and out["usage"]["total_tokens"] > 0


async def test_siliconflow_instruction_and_chunks(qwen3_dir: Path) -> None:
    from rerankd.engine.documents import chunk_text

    instruction = "Given a question, retrieve Chinese passages that answer it"
    filler = "Rivers, mountains and deserts cover much of the country. " * 40
    long_doc = filler + "The capital of China is Beijing."
    body = {
        "model": "Qwen/Qwen3-Reranker-8B",
        "query": QUERY,
        "documents": [long_doc, DOCS[1]],
        "instruction": instruction,
        "top_n": 2,
        "return_documents": False,
        "max_chunks_per_doc": 8,
        "overlap_tokens": 16,
    }
    small = Reranker.from_pretrained(str(qwen3_dir), device="cpu", max_length=160)
    async with served(small) as c:
        out = (await c.post("/v1/rerank", json=body)).json()
        plain = (await c.post("/v1/rerank", json={**body, "max_chunks_per_doc": None})).json()
    tokenizer = small.scorer.tokenizer  # type: ignore[attr-defined]
    overhead = len(small.encode(QUERY, [""], instruction=instruction)[0])
    chunks = chunk_text(tokenizer, long_doc, 160 - overhead, 16, 8)
    assert len(chunks) > 1
    best = max(small.score(QUERY, chunks, instruction=instruction))
    got = scores_by_index(out["results"])
    assert got[0] == pytest.approx(best, abs=1e-6)
    assert got[1] == pytest.approx(small.score(QUERY, [DOCS[1]], instruction=instruction)[0], abs=1e-6)
    # Without chunks the same long document is truncated and scores its head only.
    assert scores_by_index(plain["results"])[0] == pytest.approx(
        small.score(QUERY, [long_doc], instruction=instruction)[0], abs=1e-6
    )


async def test_tei_bare_array_and_raw_scores(qwen3_reranker: Reranker) -> None:
    expected = qwen3_reranker.score(QUERY, DOCS)
    async with served(qwen3_reranker) as c:
        r = await c.post(
            "/rerank",
            json={"query": QUERY, "texts": DOCS, "raw_scores": False, "return_text": True, "truncate": True},
        )
        raw = await c.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True})
    out = r.json()
    assert isinstance(out, list) and len(out) == len(DOCS)
    assert_matches_library(out, expected, key="score")
    assert all(x["text"] == DOCS[x["index"]] for x in out)
    logits = {x["index"]: x["score"] for x in raw.json()}
    assert all("text" not in x for x in raw.json())
    for i, p in enumerate(expected):
        assert logits[i] == pytest.approx(math.log(p / (1 - p)), abs=1e-4)


async def test_tei_truncate_false_rejects_long_input(qwen3_dir: Path) -> None:
    small = Reranker.from_pretrained(str(qwen3_dir), device="cpu", max_length=100)
    async with served(small) as c:
        r = await c.post("/rerank", json={"query": "q", "texts": ["word " * 300], "truncate": False})
    # TEI's answer: its Validation error type, 413, in TEI's body.
    assert r.status_code == 413 and r.json()["error_type"] == "Validation"
    assert "truncate" in r.json()["error"]


async def test_vllm_score_api(qwen3_reranker: Reranker) -> None:
    expected = qwen3_reranker.score(QUERY, DOCS)
    async with served(qwen3_reranker) as c:
        one_to_many = (await c.post("/score", json={"model": "m", "text_1": QUERY, "text_2": DOCS})).json()
        one_to_one = (
            await c.post("/v1/score", json={"text_1": [QUERY, "gravity"], "text_2": [DOCS[0], DOCS[1]]})
        ).json()
        named = (
            await c.post("/v1/score", json={"queries": QUERY, "documents": DOCS, "use_activation": False})
        ).json()
    assert [d["index"] for d in one_to_many["data"]] == list(range(len(DOCS)))
    assert [d["score"] for d in one_to_many["data"]] == pytest.approx(expected, abs=1e-6)
    assert one_to_one["data"][1]["score"] == pytest.approx(
        qwen3_reranker.score("gravity", [DOCS[1]])[0], abs=1e-6
    )
    assert named["data"][0]["score"] == pytest.approx(math.log(expected[0] / (1 - expected[0])), abs=1e-4)
    assert one_to_many["object"] == "list" and one_to_many["data"][0]["object"] == "score"


async def test_nulls_unknown_fields_and_per_request_instruction(qwen3_reranker: Reranker) -> None:
    body = {
        "query": QUERY,
        "documents": DOCS,
        "top_n": None,
        "return_documents": None,
        "rank_fields": None,
        "max_chunks_per_doc": None,
        "instruction": "Find passages in Chinese",
        "some_future_field": {"x": 1},
    }
    async with served(qwen3_reranker) as c:
        r = await c.post("/v1/rerank", json=body)
    assert r.status_code == 200, r.text
    assert_matches_library(
        r.json()["results"], qwen3_reranker.score(QUERY, DOCS, instruction="Find passages in Chinese")
    )


async def test_server_default_instruction(qwen3_dir: Path) -> None:
    reranker = Reranker.from_pretrained(str(qwen3_dir), device="cpu", instruction="Server-wide task")
    async with served(reranker) as c:
        out = (await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})).json()
        models = (await c.get("/v1/models")).json()
    assert_matches_library(out["results"], reranker.score(QUERY, DOCS, instruction="Server-wide task"))
    card = models["data"][0]
    assert (
        card["instruction"] == "Server-wide task" and card["templated"] is True and card["family"] == "yes_no"
    )


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"documents": ["a"]}, 400, "query"),
        ({"query": "q"}, 400, "documents"),
        ({"query": "q", "documents": ["a"], "top_n": -2}, 400, "top_n"),
        ({"query": 5, "documents": ["a"]}, 400, "query"),
        ({"query": "q", "documents": [{"title": "x"}], "rank_fields": ["body"]}, 400, "rank_fields"),
        ({"query": "q", "documents": [{"n": True}]}, 400, "text"),
        ({"query": "q", "documents": ["a"] * 6}, 400, "limit of 5"),
        ({"query": "q" * 101, "documents": ["a"]}, 400, "limit of 100"),
    ],
)
async def test_bad_requests_get_clear_4xx(
    qwen3_reranker: Reranker, body: dict[str, Any], status: int, needle: str
) -> None:
    async with served(qwen3_reranker, max_docs_per_request=5, max_query_chars=100) as c:
        r = await c.post("/v1/rerank", json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert needle in err["error"]["message"] and err["message"] == err["detail"] == err["error"]["message"]
    assert err["error"]["type"] == "invalid_request_error"


async def test_malformed_json_body_too_large_and_unknown_routes(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker, max_body_bytes=1000) as c:
        bad_json = await c.post(
            "/v1/rerank",
            content=b'{"query": "q", "documents": [',
            headers={"content-type": "application/json"},
        )
        no_ctype = await c.post("/v1/rerank", content=json.dumps({"query": "q", "documents": ["a"]}).encode())
        too_big = await c.post("/v1/rerank", json={"query": "q", "documents": ["x" * 2000]})
        missing = await c.post("/v3/rerank", json={})
        wrong_method = await c.get("/v1/rerank")
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["message"]
    assert no_ctype.status_code == 200
    assert too_big.status_code == 413 and "1000 bytes" in too_big.json()["message"]
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert wrong_method.status_code == 405


async def test_nothing_to_rank_is_a_4xx_on_the_server(qwen3_reranker: Reranker) -> None:
    """llama.cpp, TEI and Cohere refuse an empty list with a message; the library returns empty."""
    async with served(qwen3_reranker) as c:
        cohere = await c.post("/v1/rerank", json={"query": "q", "documents": []})
        tei = await c.post("/rerank", json={"query": "q", "texts": []})
    assert cohere.status_code == 400 and "must not be empty" in cohere.json()["message"]
    assert tei.status_code == 400 and tei.json() == {
        "error": "`texts` cannot be empty",
        "error_type": "Empty",
    }
    assert len(qwen3_reranker.rerank("q", [])) == 0


async def test_auth(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker, api_keys=("k1", "secret-2")) as c:
        body = {"query": "q", "documents": ["a"]}
        assert (await c.post("/v1/rerank", json=body)).status_code == 401
        wrong = await c.post("/v1/rerank", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
        assert wrong.headers["www-authenticate"] == "Bearer"
        ok = await c.post("/v1/rerank", json=body, headers={"Authorization": "Bearer secret-2"})
        assert ok.status_code == 200
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/ready")).status_code == 200
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/v1/models", headers={"Authorization": "Bearer k1"})).status_code == 200


async def test_queue_full_is_429_with_retry_after(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker, max_queue=6) as c:
        docs = [f"document {i} " + "about the capital " * 40 for i in range(4)]
        first = asyncio.create_task(c.post("/v1/rerank", json={"query": "q", "documents": docs}))
        while c.app.state.rerankd.engine.depth == 0:  # type: ignore[attr-defined]
            await asyncio.sleep(0.001)
        second = await c.post("/v1/rerank", json={"query": "q", "documents": docs})  # 4 + 4 > 6
        assert (await first).status_code == 200
        too_big = await c.post("/v1/rerank", json={"query": "q", "documents": ["a"] * 7})
        ok = await c.post("/v1/rerank", json={"query": "q", "documents": ["a"] * 6})
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert second.json()["error"]["type"] == "rate_limit_error"
    # A request larger than the whole queue can never succeed: 400, not a 429 to retry forever.
    assert too_big.status_code == 400 and "--max-queue 6" in too_big.json()["message"]
    assert ok.status_code == 200


async def test_vllm_top_n_zero_means_all(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker) as c:
        r = await c.post(
            "/rerank", json={"query": "q", "documents": DOCS, "top_n": 0, "truncate_prompt_tokens": -1}
        )
    assert r.status_code == 200 and len(r.json()["results"]) == len(DOCS)


async def test_query_filling_the_model_is_refused(qwen3_dir: Path) -> None:
    small = Reranker.from_pretrained(str(qwen3_dir), device="cpu", max_length=120)
    async with served(small) as c:
        r = await c.post("/v1/rerank", json={"query": "capital " * 100, "documents": ["Beijing", "Paris"]})
        s = await c.post("/score", json={"text_1": "capital " * 100, "text_2": ["Beijing"]})
    for resp in (r, s):
        assert resp.status_code == 400 and "shorten the query" in resp.json()["message"]


async def test_loading_then_ready(qwen3_dir: Path) -> None:
    async with served(None, wait=False, model=str(qwen3_dir), device="cpu") as c:
        first = await c.post("/v1/rerank", json={"query": "q", "documents": ["a"]})
        ready_first = await c.get("/ready")
        await asyncio.wait_for(c.app.state.loading, 60)  # type: ignore[attr-defined]
        after = await c.post("/v1/rerank", json={"query": "q", "documents": ["a"]})
        ready_after = await c.get("/ready")
    assert first.status_code == 503 and int(first.headers["retry-after"]) >= 1
    assert "loading" in first.json()["message"]
    assert ready_first.status_code == 503 and ready_first.json()["status"] == "loading"
    assert after.status_code == 200 and ready_after.status_code == 200


async def test_failed_load_is_503_with_reason(tmp_path: Path) -> None:
    async with served(None, model=str(tmp_path / "missing")) as c:
        r = await c.post("/v1/rerank", json={"query": "q", "documents": ["a"]})
        ready = await c.get("/ready")
    assert r.status_code == 503 and "no such directory" in r.json()["message"]
    assert ready.status_code == 503 and ready.json()["status"] == "failed"


async def test_metrics_count_requests_and_pairs(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker) as c:
        await c.post("/v1/rerank", json={"query": "q", "documents": DOCS})
        text = (await c.get("/metrics")).text
    assert 'rerankd_requests_total{route="/v1/rerank",status="200"} 1.0' in text
    assert 'rerankd_pairs_scored_total{model="tiny-qwen3"}' in text
    assert 'rerankd_queue_depth{model="tiny-qwen3"} 0.0' in text


ROUTES = [
    "/v1/rerank",
    "/v2/rerank",
    "/rerank",
    "/score",
    "/v1/score",
    "/v1/models",
    "/health",
    "/ready",
    "/metrics",
]


def openapi_spec(reranker: Reranker | None = None) -> dict[str, Any]:
    full = create_app(ServerSettings(model="m", ui=False), reranker=reranker).openapi()
    return {"paths": full["paths"], "components": full.get("components", {})}  # the contract, not versions


def test_openapi_snapshot() -> None:
    """The API's shape, requests and responses, is a contract with clients: a change must be deliberate
    (RERANKD_UPDATE_SNAPSHOTS=1)."""
    import os

    spec = openapi_spec()
    text = json.dumps(spec, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("RERANKD_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), "no OpenAPI snapshot: run with RERANKD_UPDATE_SNAPSHOTS=1 and commit it"
    assert json.loads(SNAPSHOT.read_text()) == json.loads(text), (
        "OpenAPI changed: review, then RERANKD_UPDATE_SNAPSHOTS=1"
    )
    assert set(spec["paths"]) == set(ROUTES)


def test_openapi_tells_the_truth() -> None:
    """Every route documents what it answers: a 200 schema, the error body the server really sends
    (400, not FastAPI's 422 HTTPValidationError), and /metrics as text."""
    spec = openapi_spec()
    # 422 only where TEI's dialect sends it (/rerank with `texts`), never FastAPI's HTTPValidationError.
    others = {p: ops for p, ops in spec["paths"].items() if p != "/rerank"}
    assert "422" not in json.dumps(others) and "HTTPValidationError" not in json.dumps(spec)
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    both = [error_ref, {"$ref": "#/components/schemas/TEIErrorResponse"}]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            ok = op["responses"]["200"]["content"]
            assert all(c.get("schema") not in (None, {}) for c in ok.values()), (path, method)
            if method == "post":
                for status in ("400", "401", "413", "429", "503"):
                    schema = op["responses"][status]["content"]["application/json"]["schema"]
                    assert schema.get("anyOf") == both if path == "/rerank" else schema == error_ref
    assert list(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    rerank_200 = spec["paths"]["/v1/rerank"]["post"]["responses"]["200"]["content"]["application/json"]
    assert {"$ref": "#/components/schemas/RerankResponse"} in rerank_200["schema"]["anyOf"]
