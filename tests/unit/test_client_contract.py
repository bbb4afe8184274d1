"""The contract between the client and the server (issue 11): every body the client builds, in every
dialect it speaks, validates against the server's own request model (`rerankd.protocol`) with the
meaning the client intended; every answer the server's response models describe parses back through
the client's parser into the right result; and, end to end, each dialect through the real app (over
the torch-free FakeScorer, in process via httpx.ASGITransport) ranks the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from rerankd import protocol
from rerankd.client import AsyncRerankClient, BadRequestError
from rerankd.client._dialects import PROVIDERS, build_rerank_request, parse_rerank_answer
from rerankd.client.errors import error_from_response
from rerankd.templates import split_templated

QUERY = "capital of France"
DOCS = ["bananas are yellow", "Paris is the capital of France", "France borders Spain"]
DIALECTS = [p for p in PROVIDERS if p != "auto"]


def build(provider: str, **kw: Any) -> protocol.RerankRequest:
    args: dict[str, Any] = {
        "model": "m",
        "query": QUERY,
        "documents": DOCS,
        "top_n": 2,
        "instruction": None,
        "template": False,
    }
    request = build_rerank_request(provider, **{**args, **kw})
    return protocol.RerankRequest.model_validate(request.body)


@pytest.mark.parametrize("provider", DIALECTS)
def test_every_dialects_body_means_what_the_client_meant(provider: str) -> None:
    got = build(provider)
    assert got.query == QUERY and got.items() == DOCS
    assert not got.wants_raw  # probabilities
    # No documents back where the dialect has the field; vLLM's and Cohere's bodies carry none, and the
    # server (as vLLM and Jina) then echoes them, which the client ignores: it attaches the caller's own.
    assert got.wants_documents is (provider in ("vllm", "cohere"))
    if provider == "tei":
        # TEI has no top_n nor model field: every score comes back and the client cuts after the merge.
        assert got.is_tei and got.top_n is None and got.model is None and got.truncate is True
    else:
        assert not got.is_tei and got.top_n == 2 and got.model == "m"
    assert build(provider, top_n=None).top_n is None
    assert build(provider, model=None).model is None


@pytest.mark.parametrize("provider", ["rerankd", "siliconflow"])
def test_the_instruction_travels_where_the_dialect_has_the_field(provider: str) -> None:
    assert build(provider, instruction="Find answers").instruction == "Find answers"


@pytest.mark.parametrize("provider", DIALECTS)
def test_a_client_templated_body_is_split_back_by_the_server(provider: str) -> None:
    got = build(provider, template=True, instruction="Find answers")
    assert got.instruction is None  # it is inside the template, not beside it
    for document, sent in zip(DOCS, got.items(), strict=True):
        assert isinstance(sent, str)
        prompt = split_templated(got.query, sent)
        assert prompt is not None and prompt.templated_by_caller
        assert prompt.body == f"<Instruct>: Find answers\n<Query>: {QUERY}\n<Document>: {document}"


def sent(n: int, top_n: int | None = None) -> Any:
    return build_rerank_request(
        "rerankd",
        model=None,
        query=QUERY,
        documents=DOCS[:n],
        top_n=top_n,
        instruction=None,
        template=False,
    )


def test_the_servers_rerank_response_parses_back() -> None:
    response = protocol.RerankResponse(
        id="r-1",
        model="served-model",
        results=[
            protocol.RerankResultItem(index=1, relevance_score=0.875),
            protocol.RerankResultItem(
                index=2, relevance_score=0.25, document=protocol.ResultDocument(text=DOCS[2])
            ),
        ],
        usage=protocol.UsageOut(prompt_tokens=41, total_tokens=41),
        meta=protocol.Meta(billed_units=protocol.BilledUnits(search_units=1)),
        tokens=protocol.Tokens(input_tokens=41),
    )
    chunk = parse_rerank_answer(response.model_dump(mode="json"), sent(3, top_n=2))
    assert chunk.items == [(1, 0.875), (2, 0.25)]
    assert chunk.model == "served-model" and chunk.prompt_tokens == 41


def test_the_servers_tei_and_score_answers_parse_back() -> None:
    tei = [
        protocol.TEIRank(index=2, score=0.5),
        protocol.TEIRank(index=0, score=0.125, text=DOCS[0]),
        protocol.TEIRank(index=1, score=0.0625),
    ]
    chunk = parse_rerank_answer([r.model_dump(mode="json") for r in tei], sent(3))
    assert chunk.items == [(2, 0.5), (0, 0.125), (1, 0.0625)] and chunk.model is None
    score = protocol.ScoreResponse(
        id="s-1",
        created=1,
        model="served-model",
        data=[protocol.ScoreData(index=0, score=0.75), protocol.ScoreData(index=1, score=0.5)],
        usage=protocol.UsageOut(prompt_tokens=9, total_tokens=9),
    )
    chunk = parse_rerank_answer(score.model_dump(mode="json"), sent(2))
    assert chunk.items == [(0, 0.75), (1, 0.5)] and chunk.prompt_tokens == 9


def test_the_servers_error_body_reads_back() -> None:
    body = protocol.ErrorResponse.make("top_n must be positive", "invalid_request", "bad_top_n")
    error = error_from_response(400, {"x-request-id": "rid"}, body.model_dump_json().encode())
    assert isinstance(error, BadRequestError) and not error.retryable
    assert (error.message, error.server_code, error.request_id) == (
        "top_n must be positive",
        "bad_top_n",
        "rid",
    )


# ---------------------------------------------------------------- through the real app, in process


@asynccontextmanager
async def app_transport(fake_engine: Any, **settings: Any) -> AsyncIterator[httpx.ASGITransport]:
    from rerankd.server.app import create_app
    from rerankd.server.settings import ServerSettings

    app = create_app(ServerSettings(**{"model": "m", "ui": False, **settings}), engine=fake_engine)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.loading, 30)
        yield httpx.ASGITransport(app=app)


async def test_every_dialect_ranks_the_same_through_the_server(fake_engine: Any) -> None:
    async with app_transport(fake_engine) as transport:
        results = {}
        for provider in PROVIDERS:  # "auto" detects rerankd from the model card
            async with AsyncRerankClient(
                "http://app", provider=provider, model="m", transport=transport
            ) as client:
                result = await client.rerank(QUERY, DOCS, top_n=2, return_documents=True)
                scores = await client.score(QUERY, DOCS)
                assert client.provider == ("rerankd" if provider == "auto" else provider)
            # score() and rerank() agree: the ranking's scores are the scores of its documents.
            assert result.scores == pytest.approx([scores[i] for i in result.indices]), provider
            results[provider] = result
    reference = results["rerankd"]
    assert reference.indices[0] == 1 and reference.scores[0] > reference.scores[1]
    for provider, result in results.items():
        assert result.indices == reference.indices, provider
        assert result.scores == pytest.approx(reference.scores), provider
        assert [r.text for r in result] == [DOCS[i] for i in reference.indices]


async def test_the_servers_limits_reach_the_caller_typed(fake_engine: Any) -> None:
    async with app_transport(fake_engine, max_docs_per_request=2) as transport:
        async with AsyncRerankClient("http://app", provider="cohere", transport=transport) as client:
            with pytest.raises(BadRequestError, match="limit of 2") as info:
                await client.rerank(QUERY, DOCS)
            assert info.value.status == 400 and info.value.attempts == 1
        # Sliced to the server's limit, the same call goes through and merges.
        async with AsyncRerankClient(
            "http://app", provider="cohere", transport=transport, max_docs_per_request=2
        ) as client:
            assert (await client.rerank(QUERY, DOCS, top_n=1)).indices == [1]
