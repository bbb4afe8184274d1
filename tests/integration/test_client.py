"""The client over real sockets: against a real `rerankd serve` process (scores equal the library's,
chunking, models/health, auth, 400s, the CLI's --url), and against a scripted fault-injecting server
on loopback (retries, Retry-After, deadline, dropped connections, timeouts, rate limits, the wire
dialects and templating of each provider). Waits run on an injected clock; no test sleeps for long."""

from __future__ import annotations

import asyncio
import builtins
import email.utils
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rerankd import Reranker
from rerankd.client import (
    AsyncRerankClient,
    AuthenticationError,
    BadRequestError,
    InvalidResponseError,
    RateLimit,
    RateLimitError,
    RerankClient,
    RetryPolicy,
    ServerError,
    _dialects,
)
from rerankd.client.errors import ConnectionError, TimeoutError
from rerankd.types import Document
from rerankd.types import Reranker as RerankerProtocol
from tests.faults import Drop, FaultServer, Reply, error, fault_server, rank_by, slow

QUERY = "What is the capital of China?"
DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "北京是中华人民共和国的首都。",
    "pandas is a Python library for data analysis.",
    "Paris is the capital of France.",
]
QWEN3 = "Qwen/Qwen3-Reranker-0.6B"


class FakeTime:
    """An injected clock: sleeping records the delay and moves the clock, without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def faults() -> Iterator[FaultServer]:
    with fault_server() as s:
        yield s


def sync_client(url: str, fake: FakeTime | None = None, **kw: Any) -> RerankClient:
    kw.setdefault("provider", "rerankd")
    kw.setdefault("timeout", 5.0)
    if fake is not None:
        kw.update(sleep=fake.sleep, clock=fake.clock, rand=lambda: 0.0)
    return RerankClient(url, **kw)


def async_client(url: str, fake: FakeTime | None = None, **kw: Any) -> AsyncRerankClient:
    kw.setdefault("provider", "rerankd")
    kw.setdefault("timeout", 5.0)
    if fake is not None:
        kw.update(sleep=fake.asleep, clock=fake.clock, rand=lambda: 0.0)
    return AsyncRerankClient(url, **kw)


def by_length(text: str) -> float:
    return len(text) / 1000


# ================================================================ against a real `rerankd serve`


def test_scores_equal_the_library(server: Any, qwen3_reranker: Reranker) -> None:
    expected = qwen3_reranker.score(QUERY, DOCS)
    with RerankClient(server.url) as client:  # provider="auto": the model card says rerankd
        assert isinstance(client, RerankerProtocol)
        assert client.score(QUERY, DOCS) == pytest.approx(expected, abs=1e-6)
        assert client.provider == "rerankd" and not client.templating
        result = client.rerank(QUERY, DOCS, top_n=3, return_documents=True)
    assert result.indices == qwen3_reranker.rerank(QUERY, DOCS, top_n=3).indices
    assert result.scores == pytest.approx([expected[i] for i in result.indices], abs=1e-6)
    assert [r.text for r in result] == [DOCS[i] for i in result.indices]
    assert result.model.endswith("tiny-qwen3-reranker") and result.usage.prompt_tokens > 0


def test_instruction_reaches_the_model(server: Any, qwen3_reranker: Reranker) -> None:
    instr = "Given a question, retrieve passages that answer it"
    with RerankClient(server.url, provider="rerankd") as client:
        got = client.score(QUERY, DOCS, instruction=instr)
    assert got == pytest.approx(qwen3_reranker.score(QUERY, DOCS, instruction=instr), abs=1e-6)


def test_chunked_requests_merge_with_global_indices(server: Any, qwen3_reranker: Reranker) -> None:
    docs = [Document(text=t, id=f"d{i}") for i, t in enumerate(DOCS)]
    expected = qwen3_reranker.rerank(QUERY, DOCS, top_n=3)
    with RerankClient(server.url, max_docs_per_request=2) as client:
        result = client.rerank(QUERY, docs, top_n=3, return_documents=True)
        scores = client.score(QUERY, docs)
    assert result.indices == expected.indices
    assert result.scores == pytest.approx(expected.scores, abs=1e-6)
    assert [r.document for r in result] == [docs[i] for i in expected.indices]  # the caller's objects
    assert scores == pytest.approx(qwen3_reranker.score(QUERY, DOCS), abs=1e-6)


def test_client_side_template_against_rerankd_is_harmless(server: Any, qwen3_reranker: Reranker) -> None:
    """vLLM's dialect templates on the client; rerankd recognises the template and scores the same."""
    with RerankClient(server.url, provider="vllm", template="qwen3") as client:
        assert client.templating
        assert client.score(QUERY, DOCS) == pytest.approx(qwen3_reranker.score(QUERY, DOCS), abs=1e-6)


def test_models_and_health(server: Any) -> None:
    with RerankClient(server.url) as client:
        models = client.models()
        assert client.health() == {"status": "ok"}
    assert len(models) == 1 and models[0].templated is True and models[0].family
    assert models[0].id.endswith("tiny-qwen3-reranker")


def test_a_400_is_a_bad_request_and_not_retried(server: Any, fake: FakeTime) -> None:
    with sync_client(server.url, fake) as client, pytest.raises(BadRequestError) as info:
        client.rerank("q" * 40_000, DOCS)
    e = info.value
    assert e.status == 400 and "characters" in e.message and e.request_id and e.attempts == 1
    assert fake.slept == []


def test_auth_errors_are_typed(qwen3_dir: Path, tmp_path: Path) -> None:
    """The gate checks keys before the model is needed, so this only waits for the process to listen
    (the client itself retries the refused connections meanwhile)."""
    from rerankd.testing.servers import rerankd_server

    patient = RetryPolicy(max_retries=200, initial_delay=0.05, max_delay=0.1, deadline=60)
    with rerankd_server(qwen3_dir, "--api-key", "k", "--no-ui", log_dir=tmp_path, wait_ready=False) as srv:
        with RerankClient(srv.url, retry=patient) as anonymous:
            assert anonymous.health() == {"status": "ok"}  # /health is open
            with pytest.raises(AuthenticationError) as info:
                anonymous.rerank(QUERY, DOCS)  # auto-detection's GET /v1/models already gets the 401
        assert info.value.status == 401 and "API key" in info.value.message and info.value.request_id
        assert info.value.attempts == 1
        wrong = RerankClient(srv.url, api_key="wrong", provider="rerankd")
        with wrong, pytest.raises(AuthenticationError):
            wrong.score(QUERY, DOCS)
        # The right key passes the gate: the answer is the models, or a 503 while the model loads.
        with RerankClient(srv.url, api_key="k", max_retries=0) as right:
            try:
                assert right.models()[0].templated is True
            except ServerError as e:
                assert e.status == 503
        srv.process.kill()  # graceful shutdown would wait for the model load, which this test skips


async def test_async_client_against_the_server(server: Any, qwen3_reranker: Reranker) -> None:
    expected = qwen3_reranker.rerank(QUERY, DOCS, top_n=2)
    async with AsyncRerankClient(server.url, max_docs_per_request=2) as client:
        result, scores, models = await asyncio.gather(
            client.rerank(QUERY, DOCS, top_n=2), client.score(QUERY, DOCS), client.models()
        )
        assert await client.health() == {"status": "ok"}
    assert result.indices == expected.indices
    assert scores == pytest.approx(qwen3_reranker.score(QUERY, DOCS), abs=1e-6)
    assert models[0].templated is True


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rerankd.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_rank_and_score_with_url(server: Any, qwen3_reranker: Reranker) -> None:
    docs = DOCS[:3]
    expected = qwen3_reranker.rerank("capital of China", docs)
    out = run_cli("rank", "--url", server.url, "-q", "capital of China", *docs)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if "│" in line]
    assert len(lines) == 3
    for n, (line, r) in enumerate(zip(lines, expected, strict=True), 1):
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells == [str(n), f"{r.score:.4f}", str(r.index), docs[r.index]]
    out = run_cli("rank", "--url", server.url, "-q", "capital of China", "--json", "--top-n", "2", *docs)
    body = json.loads(out.stdout)
    assert [r["index"] for r in body["results"]] == expected.indices[:2]
    assert body["results"][0]["document"] == {"text": docs[expected.indices[0]]}
    out = run_cli("score", "--url", server.url, "-q", "capital of China", *docs)
    got = json.loads(out.stdout)
    assert got["scores"] == pytest.approx(qwen3_reranker.score("capital of China", docs), abs=1e-6)
    assert got["model"].endswith("tiny-qwen3-reranker")
    bad = run_cli("score", "--url", server.url, "--provider", "openai", "-q", "x", "doc")
    assert bad.returncode == 1 and "unknown provider" in bad.stderr


# ================================================================ against the fault-injecting server


def test_429_retry_after_seconds_is_honoured(faults: FaultServer, fake: FakeTime) -> None:
    faults.on(
        "POST",
        "/v1/rerank",
        error(429, "slow down", {"Retry-After": "3"}),
        error(429, "slow down", {"Retry-After": "1"}),
        rank_by(by_length),
    )
    with sync_client(faults.url, fake) as client:
        result = client.rerank(QUERY, DOCS)
    assert fake.slept == [3.0, 1.0] and len(faults.hits("/v1/rerank")) == 3
    assert result.indices == sorted(range(5), key=lambda i: -len(DOCS[i]))


def test_retry_after_waits_are_jittered_over_the_wire(faults: FaultServer, fake: FakeTime) -> None:
    """Issue 12: clients all told "Retry-After: 1" must not all come back in the same instant."""
    for _ in range(8):
        faults.on("POST", "/v1/rerank", error(429, "slow down", {"Retry-After": "1"}), rank_by(by_length))
        client = RerankClient(faults.url, provider="rerankd", sleep=fake.sleep, clock=fake.clock)
        with client:
            client.score(QUERY, DOCS)  # the real random source
    assert len(fake.slept) == 8 and len(set(fake.slept)) > 1
    assert all(1.0 <= s <= 1.5 for s in fake.slept)


def test_retry_after_http_date_is_honoured(faults: FaultServer, fake: FakeTime) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    faults.on("POST", "/v1/rerank", error(503, "busy", {"Retry-After": when}), rank_by(by_length))
    with sync_client(faults.url, fake) as client:
        client.score(QUERY, DOCS)
    assert len(fake.slept) == 1 and 3.0 <= fake.slept[0] <= 5.0


def test_5xx_backoff_then_a_typed_error_with_the_servers_words(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v1/rerank", Reply(503, {"error": {"message": "overloaded"}}, {"x-request-id": "r-9"}))
    with sync_client(faults.url, fake, max_retries=3) as client, pytest.raises(ServerError) as info:
        client.score(QUERY, DOCS)
    e = info.value
    assert (e.status, e.message, e.request_id, e.attempts) == (503, "overloaded", "r-9", 4)
    assert fake.slept == [0.5, 1.0, 2.0] and len(faults.hits()) == 4
    # Every attempt carried the same client-made request id, and the API key.
    sent = {r.headers["x-request-id"] for r in faults.hits()}
    assert len(sent) == 1


def test_the_deadline_stops_retries(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v1/rerank", error(429, "quota", {"Retry-After": "30"}))
    client = sync_client(faults.url, fake, max_retries=5, deadline=10)
    with client, pytest.raises(RateLimitError) as info:
        client.score(QUERY, DOCS)
    assert info.value.retry_after == 30.0 and fake.slept == [] and len(faults.hits()) == 1
    faults.on("POST", "/v1/rerank", error(502, "bad gateway"))
    client = sync_client(faults.url, fake, max_retries=10, deadline=3.2)
    with client, pytest.raises(ServerError):
        client.score(QUERY, DOCS)
    assert fake.slept == [0.5, 1.0]  # 0.5 + 1.0 + 2.0 would pass 3.2 s


def test_dropped_connections_are_retried_then_typed(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v1/rerank", Drop(), Drop(), rank_by(by_length))
    with sync_client(faults.url, fake) as client:
        assert len(client.score(QUERY, DOCS)) == 5
    assert len(faults.hits()) == 3
    faults.on("POST", "/v1/rerank", Drop())
    with sync_client(faults.url, fake, max_retries=1) as client, pytest.raises(ConnectionError) as info:
        client.score(QUERY, DOCS)
    assert isinstance(info.value, builtins.ConnectionError) and info.value.status is None
    assert info.value.request_id


def test_slow_answers_time_out_and_are_retried(faults: FaultServer) -> None:
    faults.on("POST", "/v1/rerank", slow(3.0))
    start = time.monotonic()
    with sync_client(faults.url, timeout=0.2, max_retries=1) as client, pytest.raises(TimeoutError) as info:
        client.score(QUERY, DOCS)
    assert time.monotonic() - start < 2.0
    assert isinstance(info.value, builtins.TimeoutError) and info.value.attempts == 2
    assert len(faults.hits()) == 2


def test_the_deadline_cuts_the_attempt_timeout(faults: FaultServer) -> None:
    faults.on("POST", "/v1/rerank", slow(3.0))
    start = time.monotonic()
    client = sync_client(faults.url, timeout=10, max_retries=5, deadline=0.4)
    with client, pytest.raises(TimeoutError):
        client.score(QUERY, DOCS)
    assert time.monotonic() - start < 2.0 and len(faults.hits()) == 1


def test_4xx_that_cannot_succeed_are_not_retried(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v1/rerank", error(400, "top_n: must be positive"))
    with sync_client(faults.url, fake) as client, pytest.raises(BadRequestError, match="top_n"):
        client.rerank(QUERY, DOCS)
    faults.on("POST", "/v1/rerank", error(401, "bad key"))
    with sync_client(faults.url, fake) as client, pytest.raises(AuthenticationError):
        client.rerank(QUERY, DOCS)
    assert len(faults.hits()) == 2 and fake.slept == []


def test_an_answer_without_results_is_an_error(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v1/rerank", Reply(200, {"id": "x", "model": "m"}))
    with sync_client(faults.url, fake) as client, pytest.raises(InvalidResponseError, match="no results"):
        client.rerank(QUERY, DOCS)
    faults.on("POST", "/v1/rerank", Reply(200, raw=b"<html>login</html>"))
    with sync_client(faults.url, fake) as client, pytest.raises(InvalidResponseError, match="not JSON"):
        client.rerank(QUERY, DOCS)
    assert len(faults.hits()) == 2 and fake.slept == []


def test_chunks_are_concurrent_within_max_concurrent(faults: FaultServer) -> None:
    faults.on("POST", "/v1/rerank", lambda r: slow(0.15, rank_by(by_length)(r)))
    with sync_client(faults.url, max_docs_per_request=1, rate_limit=RateLimit(max_concurrent=2)) as client:
        result = client.rerank(QUERY, DOCS, top_n=2)
    assert len(faults.hits()) == 5 and faults.max_in_flight == 2
    assert result.indices == sorted(range(5), key=lambda i: -len(DOCS[i]))[:2]
    assert all(r.body["top_n"] == 1 for r in faults.hits())


def test_requests_per_second_spaces_requests(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v1/rerank", rank_by(by_length))
    limit = RateLimit(requests_per_second=5, max_concurrent=2)
    with sync_client(faults.url, fake, rate_limit=limit) as client:
        for _ in range(3):
            client.score(QUERY, DOCS)
    assert fake.slept == [0.2, 0.2]


def test_one_connection_is_reused(faults: FaultServer) -> None:
    faults.on("POST", "/v1/rerank", rank_by(by_length))
    with sync_client(faults.url) as client:
        for _ in range(3):
            client.score(QUERY, DOCS)
    assert len({r.port for r in faults.hits()}) == 1


# ---------------------------------------------------------------- dialects and templating


def test_vllm_and_siliconflow_bodies_carry_the_template(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v1/rerank", rank_by(by_length))
    instr = "Find answers"
    for provider in ("vllm", "siliconflow"):
        with sync_client(faults.url, fake, provider=provider, model=QWEN3) as client:
            client.rerank(QUERY, DOCS, top_n=2, instruction=instr)
    vllm, silicon = (r.body for r in faults.hits())
    assert vllm == {
        "model": QWEN3,
        "query": _dialects.qwen3_query(QUERY, instr),
        "documents": [_dialects.qwen3_document(d) for d in DOCS],
        "top_n": 2,
    }
    assert vllm["query"].startswith("<|im_start|>system") and vllm["query"].endswith(f"<Query>: {QUERY}\n")
    assert (
        vllm["documents"][0]
        == f"<Document>: {DOCS[0]}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert silicon == {**vllm, "return_documents": False}
    # Not a Qwen3-Reranker by name: raw text. template=None: raw text whatever the name.
    with sync_client(faults.url, fake, provider="vllm", model="BAAI/bge-reranker-v2-m3") as client:
        client.score(QUERY, DOCS)
    with sync_client(faults.url, fake, provider="vllm", model=QWEN3, template=None) as client:
        client.score(QUERY, DOCS)
    assert [r.body["query"] for r in faults.hits()[2:]] == [QUERY, QUERY]


def test_cohere_jina_tei_and_rerankd_shapes(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v2/rerank", rank_by(by_length))
    faults.on("POST", "/v1/rerank", rank_by(by_length))
    faults.on("POST", "/rerank", rank_by(by_length, shape="tei"))
    expected = sorted(range(5), key=lambda i: -len(DOCS[i]))
    results = {}
    for provider in ("cohere", "jina", "tei", "rerankd"):
        with sync_client(faults.url, fake, provider=provider, model=QWEN3) as client:
            results[provider] = client.rerank(
                QUERY, DOCS, top_n=3, instruction="I" if provider == "rerankd" else None
            )
    cohere, jina, tei, rerankd = faults.hits()
    assert (cohere.path, cohere.body) == (
        "/v2/rerank",
        {"model": QWEN3, "query": QUERY, "documents": DOCS, "top_n": 3},
    )
    assert (jina.path, jina.body) == (
        "/v1/rerank",
        {"model": QWEN3, "query": QUERY, "documents": DOCS, "top_n": 3, "return_documents": False},
    )
    assert (tei.path, tei.body) == (
        "/rerank",
        {"query": QUERY, "texts": DOCS, "raw_scores": False, "return_text": False, "truncate": True},
    )
    assert rerankd.body["instruction"] == "I" and rerankd.body["documents"] == DOCS
    for provider, result in results.items():
        assert result.indices == expected[:3], provider
    assert results["tei"].model == QWEN3 and results["cohere"].usage.prompt_tokens == 35


def test_auto_detects_vllm_and_templates(faults: FaultServer, fake: FakeTime) -> None:
    faults.on(
        "GET", "/v1/models", Reply(200, {"object": "list", "data": [{"id": QWEN3, "owned_by": "vllm"}]})
    )
    faults.on("POST", "/v1/rerank", rank_by(by_length))
    with sync_client(faults.url, fake, provider="auto") as client:
        client.score(QUERY, DOCS)
        client.score(QUERY, DOCS)
        assert client.provider == "vllm" and client.templating
        assert client.model_name == "fake-model"  # the name the server gave in its answer
    models, first, second = faults.hits()
    assert models.path == "/v1/models"
    assert first.body["query"] == second.body["query"] == _dialects.qwen3_query(QUERY)
    assert "model" not in first.body  # no model was configured; vLLM serves its one model


def test_auto_detects_tei_from_info(faults: FaultServer, fake: FakeTime) -> None:
    faults.on(
        "GET", "/info", Reply(200, {"model_id": "BAAI/bge-reranker-base", "model_type": {"reranker": {}}})
    )
    faults.on("POST", "/rerank", rank_by(by_length, shape="tei"))
    with sync_client(faults.url, fake, provider="auto") as client:
        result = client.rerank(QUERY, DOCS, top_n=1)
    assert client.provider == "tei" and result.model == "BAAI/bge-reranker-base"
    assert [r.path for r in faults.hits()] == ["/v1/models", "/info", "/rerank"]


def test_auto_falls_back_and_says_so(
    faults: FaultServer, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    faults.on("POST", "/v1/rerank", rank_by(by_length))
    client = sync_client(faults.url, fake, provider="auto", model=QWEN3)
    with caplog.at_level(logging.WARNING, "rerankd.client"), client:
        client.score(QUERY, DOCS)
    assert client.provider == "rerankd" and not client.templating
    assert "could not tell which server" in caplog.text and "'rerankd' wire format" in caplog.text
    assert faults.hits("/v1/rerank")[0].body["query"] == QUERY


def test_auto_detection_stops_on_auth_errors(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("GET", "/v1/models", error(401, "bad key"))
    with sync_client(faults.url, fake, provider="auto") as client, pytest.raises(AuthenticationError):
        client.score(QUERY, DOCS)
    assert len(faults.hits()) == 1


# ---------------------------------------------------------------- the async client, same faults


async def test_async_retries_retry_after_and_drops(faults: FaultServer, fake: FakeTime) -> None:
    faults.on(
        "POST",
        "/v1/rerank",
        error(429, "slow", {"Retry-After": "2"}),
        Drop(),
        error(500, "x"),
        rank_by(by_length),
    )
    async with async_client(faults.url, fake, max_retries=3) as client:
        scores = await client.score(QUERY, DOCS)
    assert scores == [by_length(d) for d in DOCS]
    assert fake.slept == [2.0, 1.0, 2.0] and len(faults.hits()) == 4


async def test_async_typed_errors_and_deadline(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/v1/rerank", error(503, "down", {"Retry-After": "1"}))
    async with async_client(faults.url, fake, max_retries=10, deadline=2.5) as client:
        with pytest.raises(ServerError) as info:
            await client.rerank(QUERY, DOCS)
    assert fake.slept == [1.0, 1.0] and info.value.attempts == 3
    faults.on("POST", "/v1/rerank", error(400, "bad"))
    async with async_client(faults.url, fake) as client:
        with pytest.raises(BadRequestError):
            await client.rerank(QUERY, DOCS)
    assert len(faults.hits()) == 4


async def test_async_timeout(faults: FaultServer) -> None:
    faults.on("POST", "/v1/rerank", slow(3.0))
    async with async_client(faults.url, timeout=0.2, max_retries=1) as client:
        with pytest.raises(TimeoutError):
            await client.score(QUERY, DOCS)
    assert len(faults.hits()) == 2


async def test_async_chunks_gather_within_limits(faults: FaultServer) -> None:
    faults.on("POST", "/v2/rerank", lambda r: slow(0.15, rank_by(by_length)(r)))
    limit = RateLimit(max_concurrent=2)
    async with async_client(
        faults.url, provider="cohere", max_docs_per_request=2, rate_limit=limit
    ) as client:
        result = await client.rerank(QUERY, DOCS, top_n=2, return_documents=True)
    assert len(faults.hits()) == 3 and faults.max_in_flight == 2
    expected = sorted(range(5), key=lambda i: -len(DOCS[i]))[:2]
    assert result.indices == expected and [r.text for r in result] == [DOCS[i] for i in expected]


async def test_async_rate_limit_and_tei(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("POST", "/rerank", rank_by(by_length, shape="tei"))
    limit = RateLimit(requests_per_second=4)
    async with async_client(faults.url, fake, provider="tei", rate_limit=limit) as client:
        for _ in range(3):
            result = await client.rerank(QUERY, DOCS, top_n=1)
    assert fake.slept == [0.25, 0.25] and result.indices == [1]


async def test_async_one_chunk_failing_fails_the_call(faults: FaultServer, fake: FakeTime) -> None:
    def answer(r: Any) -> Reply:
        return error(400, "bad doc") if "Paris" in json.dumps(r.body) else rank_by(by_length)(r)

    faults.on("POST", "/v1/rerank", answer)
    async with async_client(faults.url, fake, max_docs_per_request=2) as client:
        with pytest.raises(BadRequestError, match="bad doc"):
            await client.rerank(QUERY, DOCS)


def test_health_of_other_servers(faults: FaultServer, fake: FakeTime) -> None:
    faults.on("GET", "/health", Reply(200, raw=b"OK"))
    with sync_client(faults.url, fake) as client:
        assert client.health() == {"status": "ok"}
    faults.on("GET", "/health", error(503, "loading", {"Retry-After": "1"}))
    with sync_client(faults.url, fake, max_retries=1) as client, pytest.raises(ServerError, match="loading"):
        client.health()
    assert fake.slept == [1.0] and len(faults.hits()) == 3


def test_a_failed_slice_does_not_wait_for_the_others(faults: FaultServer) -> None:
    # One slice fails at once (400); the others are told to come back in 2 s (503 + Retry-After).
    # The call must raise at once, not after the other slices' retries.
    def script(r: Any) -> Any:
        if r.body["documents"] == DOCS[:1]:
            return error(400, "bad slice")
        return error(503, "busy", {"Retry-After": "2"})

    faults.on("POST", "/v1/rerank", script)
    start = time.monotonic()
    with (
        sync_client(faults.url, max_docs_per_request=1, max_retries=5) as client,
        pytest.raises(BadRequestError),
    ):
        client.rerank(QUERY, DOCS)
    assert time.monotonic() - start < 1.5
