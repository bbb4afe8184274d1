"""ClientOptions: every client option stated once, frozen; both clients build one from their
keywords or take it whole (`options=`), and take an httpx transport (`transport=`)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest

from rerankd.client import AsyncRerankClient, ClientOptions, RateLimit, RerankClient, RetryPolicy


def test_options_are_frozen_validated_and_hold_a_read_only_copy_of_the_headers() -> None:
    headers = {"x-team": "search"}
    options = ClientOptions("http://h:1/", api_key="k", headers=headers, max_retries=4, deadline=9.0)
    headers["x-team"] = "changed"
    assert options.base_url == "http://h:1" and options.headers == {"x-team": "search"}
    with pytest.raises(TypeError):
        options.headers["x"] = "y"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.api_key = "other"  # type: ignore[misc]
    assert options.retry_policy == RetryPolicy(max_retries=4, deadline=9.0)
    custom = RetryPolicy(max_retries=0, deadline=None)
    assert options.replace(retry=custom).retry_policy is custom  # `retry` replaces max_retries/deadline
    bad_options: list[tuple[dict[str, Any], str]] = [
        ({"base_url": "h:1"}, "http"),
        ({"provider": "openai"}, "unknown provider"),
        ({"template": "llama"}, "template"),
        ({"max_docs_per_request": 0}, "max_docs_per_request"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"deadline": 0}, "deadline"),
    ]
    for bad, match in bad_options:
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(options, **bad)


@pytest.mark.parametrize("cls", [RerankClient, AsyncRerankClient])
def test_both_clients_build_the_same_options(cls: type[RerankClient] | type[AsyncRerankClient]) -> None:
    limit = RateLimit(max_concurrent=3)
    client = cls("http://h:1", model="m", provider="cohere", rate_limit=limit, timeout=7.0)
    assert client.options == ClientOptions(
        "http://h:1", model="m", provider="cohere", rate_limit=limit, timeout=7.0
    )
    assert (client.provider, client.model, client.timeout, client.fanout) == ("cohere", "m", 7.0, 3)
    base = ClientOptions("http://h:1", model="m", provider="jina")
    # options= whole, or with keywords (and base_url) on top.
    assert cls(options=base).options is base
    over = cls("http://other:2", options=base, model="n")
    assert over.options == dataclasses.replace(base, base_url="http://other:2", model="n")
    assert over.provider == "jina"
    with pytest.raises(TypeError, match="base_url"):
        cls()
    with pytest.raises(TypeError, match="unexpected client options"):
        cls("http://h:1", max_retry=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="not both"):
        cls("http://h:1", http_client=httpx.Client(), transport=httpx.MockTransport(lambda r: None))  # type: ignore[arg-type]


def rerank_answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    n = len(body["documents"])
    return httpx.Response(
        200,
        json={
            "model": "served",
            "results": [{"index": i, "relevance_score": i / n} for i in reversed(range(n))],
        },
    )


def test_the_sync_client_talks_through_a_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return rerank_answer(request)

    options = ClientOptions("http://rerank.test", api_key="secret", provider="rerankd", headers={"x-a": "1"})
    with RerankClient(options=options, transport=httpx.MockTransport(handler)) as client:
        result = client.rerank("q", ["a", "b", "c"], top_n=2)
    assert result.indices == [2, 1] and result.model == "served"
    (request,) = seen
    assert request.url == "http://rerank.test/v1/rerank"
    assert request.headers["authorization"] == "Bearer secret" and request.headers["x-a"] == "1"
    assert json.loads(request.content)["top_n"] == 2


async def test_the_async_client_talks_through_a_transport() -> None:
    transport = httpx.MockTransport(rerank_answer)
    async with AsyncRerankClient("http://rerank.test", provider="jina", transport=transport) as client:
        assert await client.score("q", ["a", "b"]) == [0.0, 0.5]


def test_the_keywords_are_exactly_the_options_fields() -> None:
    from rerankd.client.options import OptionArgs

    # Same names, same order, same annotations (strings here: both modules postpone annotations).
    fields = [(f.name, str(f.type)) for f in dataclasses.fields(ClientOptions)][1:]
    keywords = [(k, getattr(v, "__forward_arg__", v)) for k, v in OptionArgs.__annotations__.items()]
    assert keywords == fields
