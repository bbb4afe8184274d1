"""Client input a fuzzer or a hostile client sends: never a 5xx, never document text in the log, no work
before the limits, and the small protocol corners (HEAD probes, error codes, headers)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from rerankd.config import BatchConfig
from rerankd.engine.engine import RerankEngine
from rerankd.server.app import create_app
from rerankd.server.sanitize import MAX_CHUNKS_PER_DOC, replace_lone_surrogates
from rerankd.server.settings import ServerSettings
from rerankd.testing.asgi import app_client
from rerankd.testing.fake import FakeScorer

SECRET = "TOPSECRET-document-text"


class RecordingScorer(FakeScorer):
    """Records the length of every document it is asked to encode (to see what work a request costs)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded_chars: list[int] = []

    def encode(self, query: str, document: str, **kw: Any):  # type: ignore[no-untyped-def]
        self.encoded_chars.append(len(document))
        return super().encode(query, document, **kw)


@asynccontextmanager
async def served(scorer: FakeScorer | None = None, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings.setdefault("model", "fake")
    settings.setdefault("ui", False)
    engine = RerankEngine(scorer or FakeScorer(), settings.pop("engine_batch", BatchConfig()))
    app = create_app(ServerSettings(**settings), engine=engine)
    async with app_client(app, timeout=30, raise_app_exceptions=False) as client:
        yield client


def test_lone_surrogates_become_replacement_characters() -> None:
    assert replace_lone_surrogates(rb'"a\ud800b"') == rb'"a\ufffdb"'
    assert replace_lone_surrogates(rb'"\udc00"') == rb'"\ufffd"'
    assert replace_lone_surrogates(rb'"\ud83d\ude00"') == rb'"\ud83d\ude00"'  # a valid pair stays
    assert replace_lone_surrogates(rb'"\\ud800"') == rb'"\\ud800"'  # a literal backslash, then text
    assert replace_lone_surrogates(rb'"\\\ud800"') == rb'"\\\ufffd"'


@pytest.mark.parametrize(
    "body",
    [
        '{"query": "q\\ud800", "documents": ["a\\udc00b"], "return_documents": true}',
        '{"query": "q", "documents": ["x"], "instruction": "judge \\udbff"}',
        '{"query": "q", "texts": ["\\ud800"], "return_text": true}',
    ],
)
async def test_surrogates_are_replaced_not_500(body: str) -> None:
    async with served() as client:
        r = await client.post("/v1/rerank", content=body.encode())
    assert r.status_code == 200, r.text
    assert "\ud800" not in r.text and "\udc00" not in r.text


async def test_non_string_text_is_a_400_naming_the_field(caplog: pytest.LogCaptureFixture) -> None:
    body = {"query": "q", "documents": ["ok", {"text": 5, "secret": SECRET}], "return_documents": True}
    with caplog.at_level(logging.DEBUG):
        async with served() as client:
            r = await client.post("/v1/rerank", json=body)
    assert r.status_code == 400, r.text
    assert "documents[1].text must be a string" in r.json()["error"]["message"]
    assert SECRET not in caplog.text


async def test_non_finite_numbers_echo_cleanly() -> None:
    body = '{"query": "q", "documents": [{"text": "a", "x": NaN, "y": {"z": Infinity}}], "return_documents": true}'
    async with served() as client:
        r = await client.post("/v1/rerank", content=body.encode())
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["document"]["text"] == "a"


async def test_unexpected_error_logs_type_and_route_only(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise ValueError(f"input_value={SECRET}")

    monkeypatch.setattr("rerankd.server.serving.rerank_response", broken)
    with caplog.at_level(logging.DEBUG):
        async with served() as client:
            r = await client.post("/v1/rerank", json={"query": SECRET, "documents": [SECRET]})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "unhandled ValueError on POST /v1/rerank" in caplog.text
    assert SECRET not in caplog.text


async def test_max_chunks_per_doc_is_bounded_before_tokenizing() -> None:
    scorer = RecordingScorer()
    async with served(scorer) as client:
        scorer.encoded_chars.clear()
        r = await client.post(
            "/v1/rerank",
            json={"query": "q", "documents": ["word " * 1000], "max_chunks_per_doc": MAX_CHUNKS_PER_DOC + 1},
        )
    assert r.status_code == 400
    assert f"limit of {MAX_CHUNKS_PER_DOC}" in r.json()["error"]["message"]
    assert scorer.encoded_chars == []


class ChunkRecordingScorer(RecordingScorer):
    """Also records every document handed to `encode_chunks` (each one is tokenized there)."""

    def __init__(self, max_token_chars: int | None = 8, max_length: int = 8192) -> None:
        FakeScorer.__init__(self, max_length=max_length)
        self.encoded_chars: list[int] = []
        self.info = dataclasses.replace(self.info, max_token_chars=max_token_chars)
        self.chunked: list[int] = []  # per encode_chunks call: the chunks it made

    def encode_chunks(self, query: str, document: str, **kw: Any):  # type: ignore[no-untyped-def]
        parts = super().encode_chunks(query, document, **kw)
        self.chunked.append(len(parts))
        return parts


async def test_too_many_chunks_are_refused_from_character_counts_before_tokenizing() -> None:
    # 100 documents of 5,000 characters: a token covers at most 8 of them, so each has >= 625 tokens,
    # >= 40 chunks of 16: >= 4,000 inputs against a queue of 1,000. Refused without a tokenizer call.
    scorer = ChunkRecordingScorer(max_token_chars=8)
    async with served(scorer, engine_batch=BatchConfig(max_queue=1000)) as client:
        scorer.encoded_chars.clear()
        t0 = time.perf_counter()
        r = await client.post(
            "/v1/rerank",
            json={
                "query": "q",
                "documents": ["word " * 1000] * 100,
                "max_chunks_per_doc": 64,
                "max_tokens_per_doc": 16,
            },
        )
        elapsed = time.perf_counter() - t0
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert "max_chunks_per_doc" in message and "at least 4000 model inputs" in message
    assert scorer.chunked == [] and scorer.encoded_chars == []
    assert elapsed < 1.0


async def test_chunk_count_stops_at_the_queue_when_lengths_cannot_tell() -> None:
    # Unknown characters per token: nothing is refused up front, but the count stops one chunk past
    # what the queue holds instead of templating every chunk of every document.
    scorer = ChunkRecordingScorer(max_token_chars=None, max_length=64)
    async with served(scorer, engine_batch=BatchConfig(max_queue=100)) as client:
        r = await client.post(
            "/v1/rerank",
            json={"query": "q", "documents": ["word " * 1000] * 50, "max_chunks_per_doc": 64},
        )
        assert r.status_code == 400, r.text[:300]
        assert "max_chunks_per_doc" in r.json()["error"]["message"]
        # 50 documents of ~40 chunks each would be ~2,000 chunks: the count stopped past the first 100.
        assert len(scorer.chunked) < 50 and sum(scorer.chunked) <= 101, scorer.chunked
        ok = await client.post(
            "/v1/rerank",
            json={"query": "q", "documents": ["word " * 60] * 40, "max_chunks_per_doc": 2},
        )
    assert ok.status_code == 200, ok.text[:300]
    assert len(ok.json()["results"]) == 40


async def test_too_many_pairs_are_refused_before_tokenizing() -> None:
    scorer = RecordingScorer()
    async with served(scorer, engine_batch=BatchConfig(max_queue=10)) as client:
        scorer.encoded_chars.clear()
        r = await client.post("/v1/rerank", json={"query": "q", "documents": ["d"] * 11})
        s = await client.post("/score", json={"text_1": "q", "text_2": ["d"] * 11})
    for answer, field in ((r, "documents"), (s, "text_2")):
        assert answer.status_code == 400, answer.text
        assert f"lower {field}" in answer.json()["error"]["message"]
    assert scorer.encoded_chars == []


async def test_long_instruction_has_its_own_message() -> None:
    async with served() as client:
        r = await client.post(
            "/v1/rerank", json={"query": "q", "documents": ["d"], "instruction": "x" * 100_000}
        )
        s = await client.post("/score", json={"text_1": "q", "text_2": ["d"], "instruction": "x" * 100_000})
    for answer in (r, s):
        assert answer.status_code == 400, answer.text
        assert "shorten the instruction" in answer.json()["error"]["message"]


async def test_documents_are_clipped_before_tokenizing_when_truncated_anyway() -> None:
    scorer = RecordingScorer()
    huge = "word " * 200_000  # 1M characters, about 200k fake tokens, truncated to max_length anyway
    async with served(scorer, max_length=512) as client:
        scorer.encoded_chars.clear()
        r = await client.post("/v1/rerank", json={"query": "q", "documents": [huge]})
        assert r.status_code == 200
        assert max(scorer.encoded_chars) <= 512 * 32
        scorer.encoded_chars.clear()
        # truncate: false needs the full length to refuse it
        t = await client.post("/rerank", json={"query": "q", "texts": [huge], "truncate": False})
        assert t.status_code == 413 and t.json()["error_type"] == "Validation"  # as TEI answers it
        assert max(scorer.encoded_chars) == len(huge)


async def test_head_probes() -> None:
    async with served(api_keys=("k",)) as client:
        assert (await client.head("/health")).status_code == 200
        assert (await client.head("/ready")).status_code == 200


async def test_error_code_is_always_a_string() -> None:
    async with served() as client:
        answers = [
            await client.get("/nope"),
            await client.delete("/v1/rerank"),
            await client.post("/v1/rerank", json={"query": 1}),
        ]
    for r in answers:
        assert r.status_code in (400, 404, 405)
        assert isinstance(r.json()["error"]["code"], str), r.text


async def test_two_authorization_headers_are_refused() -> None:
    async with served(api_keys=("good",)) as client:
        headers = [("authorization", "Bearer bad"), ("authorization", "Bearer good")]
        r = await client.post("/v1/rerank", json={"query": "q", "documents": ["d"]}, headers=headers)
        ok = await client.post(
            "/v1/rerank", json={"query": "q", "documents": ["d"]}, headers={"authorization": "Bearer good"}
        )
    assert r.status_code == 400
    assert "one Authorization header" in r.json()["error"]["message"]
    assert ok.status_code == 200


async def test_non_ascii_request_id_is_replaced_not_double_encoded() -> None:
    async with served() as client:
        mine = await client.get("/health", headers={"x-request-id": "abc-123"})
        odd = await client.get("/health", headers=[(b"x-request-id", "né-☃".encode())])
    assert mine.headers["x-request-id"] == "abc-123"
    echoed = odd.headers.get_list("x-request-id")
    assert len(echoed) == 1 and echoed[0].isascii() and len(echoed[0]) == 32


async def test_the_spans_bound_counts_with_the_loaded_models_length() -> None:
    """A 512-token model under the default --max-length (8192): each long document is read, and
    searched, for 512 tokens only, so nine of them fit the spans bound (counted with 8192 they would
    not: 9 x 255 windows > 2048)."""
    docs = [("word " * 2_000).strip() for _ in range(9)]
    async with served(FakeScorer(max_length=512)) as client:
        r = await client.post(
            "/v1/rerank", json={"query": "word", "documents": docs, "return_spans": True, "span_tokens": 64}
        )
    assert r.status_code == 200, r.text
    assert all(result["spans"] for result in r.json()["results"])
