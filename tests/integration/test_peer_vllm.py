"""vLLM's own online rerank and score tests, run against rerankd, answers validated with vLLM's own
response models (vendored in tests/peers/vllm_protocol.py).

Sources (https://github.com/vllm-project/vllm, Apache-2.0, Copyright contributors to the vLLM project):
  tests/entrypoints/pooling/score/test_online_rerank.py
  tests/entrypoints/pooling/scoring/test_online_score.py
  tests/entrypoints/pooling/scoring/test_max_tokens_per_doc.py
  tests/entrypoints/pooling/scoring/test_qwen3_reranker_online.py
  tests/entrypoints/pooling/scoring/test_protocol.py
Adapted only at the fixture: `server` is rerankd serving the tiny Qwen3 model (the `server` session
fixture in tests/conftest.py) behind vLLM's RemoteOpenAIServer.url_for; the max_model_len tests run an
in-process rerankd whose model is cut to vLLM's `--max-model-len 100`. Assertions tied to vLLM's model
weights (bge-reranker-base's >= 0.9 / <= 0.01, the hf_runner parity) compare with rerankd's library
scores instead (`qwen3_reranker`); each such line says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import torch
import torch.nn.functional as F

from rerankd import Reranker
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.testing.servers import RunningServer
from tests.peers.vllm_protocol import RerankResponse, ScoreResponse

MODEL_NAME = "Qwen/Qwen3-Reranker-0.6B"  # sent as vLLM's tests send it; rerankd serves its one model


class RemoteOpenAIServer:
    """vLLM's tests.utils.RemoteOpenAIServer, as far as these tests use it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def url_for(self, *parts: str) -> str:
        return self.url + "/" + "/".join(p.strip("/") for p in parts)


@pytest.fixture
def server(server: RunningServer) -> RemoteOpenAIServer:  # the conftest session server
    return RemoteOpenAIServer(server.url)


def approx_library(got: list[float], expected: list[float]) -> None:
    assert got == pytest.approx(expected, abs=1e-5)


# tests/entrypoints/pooling/score/test_online_rerank.py


def test_basic(server: RemoteOpenAIServer, qwen3_dir: Path) -> None:
    response = requests.get(server.url_for("/v1/models"))
    served_model = response.json()["data"][0]["id"]
    assert served_model == str(qwen3_dir)  # vLLM: MODEL_NAME; rerankd names the model it was given
    # Not ported: the /tokenize half (rerankd serves no /tokenize route).


@pytest.mark.parametrize("model_name", [MODEL_NAME])
def test_rerank_texts(server: RemoteOpenAIServer, model_name: str, qwen3_reranker: Reranker) -> None:
    query = "What is the capital of France?"
    documents = ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]
    rerank_response = requests.post(
        server.url_for("rerank"), json={"model": model_name, "query": query, "documents": documents}
    )
    rerank_response.raise_for_status()
    rerank = RerankResponse.model_validate(rerank_response.json())

    assert rerank.id is not None
    assert rerank.results is not None
    assert len(rerank.results) == 2
    # vLLM: >= 0.9 and <= 0.01 with bge-reranker-base's weights; here the library's scores, best first.
    expected = qwen3_reranker.score(query, documents)
    assert [r.index for r in rerank.results] == sorted(range(2), key=lambda i: -expected[i])
    approx_library([r.relevance_score for r in rerank.results], sorted(expected, reverse=True))
    assert [r.document.text for r in rerank.results] == [documents[r.index] for r in rerank.results]


@pytest.mark.parametrize("model_name", [MODEL_NAME])
def test_top_n(server: RemoteOpenAIServer, model_name: str, qwen3_reranker: Reranker) -> None:
    query = "What is the capital of France?"
    documents = [
        "The capital of Brazil is Brasilia.",
        "The capital of France is Paris.",
        "Cross-encoder models are neat",
    ]
    rerank_response = requests.post(
        server.url_for("rerank"),
        json={"model": model_name, "query": query, "documents": documents, "top_n": 2},
    )
    rerank_response.raise_for_status()
    rerank = RerankResponse.model_validate(rerank_response.json())

    assert rerank.id is not None
    assert rerank.results is not None
    assert len(rerank.results) == 2
    # vLLM: >= 0.9 and <= 0.01 with its weights; here the library's two best.
    approx_library(
        [r.relevance_score for r in rerank.results],
        sorted(qwen3_reranker.score(query, documents), reverse=True)[:2],
    )


class SmallServer(RemoteOpenAIServer):
    """An in-process rerankd whose model is cut to `max_length` tokens (vLLM's --max-model-len)."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__("http://rerankd")
        self.client, self.loop = client, loop

    def post(self, url: str, json: dict[str, Any]) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post(url, json=json))


@pytest.fixture
def small_server(qwen3_dir: Path) -> Iterator[SmallServer]:
    """`--max-model-len 100`, as vLLM's test_online_rerank.py and test_online_score.py start vLLM."""
    small = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="float32", max_length=100)
    app = create_app(ServerSettings(model="small", ui=False), reranker=small)
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rerankd")
    try:
        loop.run_until_complete(asyncio.wait_for(app.state.loading, 60))
        yield SmallServer(client, loop)
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()


@pytest.mark.parametrize("model_name", [MODEL_NAME])
def test_rerank_max_model_len(small_server: SmallServer, model_name: str) -> None:
    query = "What is the capital of France?" * 100
    documents = ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]
    rerank_response = small_server.post(
        small_server.url_for("rerank"), json={"model": model_name, "query": query, "documents": documents}
    )
    assert rerank_response.status_code == 400
    # Assert just a small fragments of the response
    assert "Please reduce the length of the input." in rerank_response.text


@pytest.mark.parametrize("model_name", [MODEL_NAME])
def test_use_activation(server: RemoteOpenAIServer, model_name: str) -> None:
    def get_outputs(use_activation: bool | None) -> torch.Tensor:
        query = "What is the capital of France?"
        documents = ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]
        response = requests.post(
            server.url_for("rerank"),
            json={
                "model": model_name,
                "query": query,
                "documents": documents,
                "use_activation": use_activation,
            },
        )
        outputs = response.json()
        return torch.tensor([x["relevance_score"] for x in outputs["results"]])

    default = get_outputs(use_activation=None)
    w_activation = get_outputs(use_activation=True)
    wo_activation = get_outputs(use_activation=False)

    assert torch.allclose(default, w_activation, atol=1e-2), "Default should use activation."
    assert not torch.allclose(w_activation, wo_activation, atol=1e-2), (
        "wo_activation should not use activation."
    )
    assert torch.allclose(F.sigmoid(wo_activation), w_activation, atol=1e-2), (
        "w_activation should be close to activation(wo_activation)."
    )


# Not ported from test_online_rerank.py: test_invocations (SageMaker's /invocations route), test_pooling_*
# (/pooling): rerankd serves neither route (docs/dialects.md).


# tests/entrypoints/pooling/scoring/test_online_score.py: every request shape of vLLM's score API.

QUERY = "What is the capital of France?"
DOCUMENT = "The capital of France is Paris."


def run_library(library: Reranker, text_pairs: list[list[str]]) -> list[float]:
    """vLLM's run_transformers (hf_runner with the peer's weights): here rerankd's library scores."""
    return [library.score(q, [d])[0] for q, d in text_pairs]


def check_score(server: RemoteOpenAIServer, library: Reranker, body: dict[str, Any], pairs: list[list[str]]):  # type: ignore[no-untyped-def]
    score_response = requests.post(server.url_for("score"), json={"model": MODEL_NAME, **body})
    score_response.raise_for_status()
    score = ScoreResponse.model_validate(score_response.json())

    assert score.id is not None
    assert score.data is not None
    assert len(score.data) == len(pairs)

    vllm_outputs = [d.score for d in score.data]
    hf_outputs = run_library(library, pairs)
    for i in range(len(vllm_outputs)):
        assert hf_outputs[i] == pytest.approx(vllm_outputs[i], rel=0.01)


def test_queries_str_documents_str(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    check_score(server, qwen3_reranker, {"queries": QUERY, "documents": DOCUMENT}, [[QUERY, DOCUMENT]])


def test_queries_str_items_str(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    check_score(server, qwen3_reranker, {"queries": QUERY, "items": DOCUMENT}, [[QUERY, DOCUMENT]])


def test_text_1_str_text_2_str(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    check_score(server, qwen3_reranker, {"text_1": QUERY, "text_2": DOCUMENT}, [[QUERY, DOCUMENT]])


def test_data_1_str_data_2_str(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    check_score(server, qwen3_reranker, {"data_1": QUERY, "data_2": DOCUMENT}, [[QUERY, DOCUMENT]])


def test_queries_str_documents_list(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    documents = ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]
    pairs = [[QUERY, documents[0]], [QUERY, documents[1]]]
    check_score(server, qwen3_reranker, {"queries": QUERY, "documents": documents}, pairs)


def test_queries_list_documents_list(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    queries = ["What is the capital of the United States?", "What is the capital of France?"]
    documents = ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]
    pairs = [[queries[0], documents[0]], [queries[1], documents[1]]]
    check_score(server, qwen3_reranker, {"queries": queries, "documents": documents}, pairs)


def test_data_content_parts(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    """ScoreMultiModalParam with text parts (vLLM's score_utils); rerankd refuses other parts."""
    parts = {"content": [{"type": "text", "text": DOCUMENT}, {"type": "text", "text": "Brasilia."}]}
    check_score(
        server,
        qwen3_reranker,
        {"data_1": [QUERY], "data_2": parts},
        [[QUERY, DOCUMENT], [QUERY, "Brasilia."]],
    )
    image = {"content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}
    r = requests.post(server.url_for("score"), json={"data_1": QUERY, "data_2": image})
    assert r.status_code == 400 and "text only" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"queries": ["a", "b"], "items": ["c", "d", "e"]}, "Input lengths must be either 1:1, 1:N or N:N"),
        ({"text_1": ["a", "b"], "text_2": "c"}, "Input lengths must be either 1:1, 1:N or N:N"),
        ({"text_1": [], "text_2": ["c"]}, "At least one text element must be given"),
        ({"data_1": "a", "data_2": []}, "At least one text_pair element must be given"),
    ],
)
def test_score_input_lengths(server: RemoteOpenAIServer, body: dict[str, Any], needle: str) -> None:
    """vLLM's _validate_score_input_lens: 1:1, 1:N or N:N, its messages (a 400, vLLM's ValueError)."""
    r = requests.post(server.url_for("score"), json=body)
    assert r.status_code == 400 and needle in r.json()["error"]["message"]


def test_score_one_to_one_list(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    """vLLM broadcasts a one-element list on the left like a string: ["q"] with "d" is 1:1."""
    check_score(server, qwen3_reranker, {"text_1": [QUERY], "text_2": DOCUMENT}, [[QUERY, DOCUMENT]])


def test_score_max_model_len(small_server: SmallServer) -> None:
    queries = "What is the capital of France?" * 20
    documents = ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]
    score_response = small_server.post(
        small_server.url_for("score"), json={"model": MODEL_NAME, "queries": queries, "documents": documents}
    )
    assert score_response.status_code == 400
    # Assert just a small fragments of the response
    assert "Please reduce the length of the input." in score_response.text

    # Test truncation
    score_response = small_server.post(
        small_server.url_for("score"),
        json={"model": MODEL_NAME, "queries": queries, "documents": documents, "truncate_prompt_tokens": 101},
    )
    assert score_response.status_code == 400
    assert "Please request a smaller truncation size." in score_response.text


def test_score_use_activation(server: RemoteOpenAIServer) -> None:
    def get_outputs(use_activation: bool | None) -> torch.Tensor:
        response = requests.post(
            server.url_for("score"),
            json={
                "model": MODEL_NAME,
                "queries": QUERY,
                "documents": DOCUMENT,
                "use_activation": use_activation,
            },
        )
        outputs = response.json()
        return torch.tensor([x["score"] for x in outputs["data"]])

    default = get_outputs(use_activation=None)
    w_activation = get_outputs(use_activation=True)
    wo_activation = get_outputs(use_activation=False)

    # vLLM runs these for its cross-encoder model: rerankd's yes/no reranker is one too.
    assert torch.allclose(default, w_activation, atol=1e-2), "Default should use activation."
    assert not torch.allclose(w_activation, wo_activation, atol=1e-2), (
        "wo_activation should not use activation."
    )
    assert torch.allclose(F.sigmoid(wo_activation), w_activation, atol=1e-2), (
        "w_activation should be close to activation(wo_activation)."
    )


# tests/entrypoints/pooling/scoring/test_max_tokens_per_doc.py (the Qwen3 score-template path; the Jina
# and Gemma tests send the same requests to other models).


def test_qwen_max_tokens_per_doc(server: RemoteOpenAIServer, qwen3_reranker: Reranker) -> None:
    query = "What is the capital of France?"
    long_doc = "The capital of France is Paris. " * 20
    response = requests.post(
        server.url_for("rerank"),
        json={"model": MODEL_NAME, "query": query, "documents": [long_doc], "max_tokens_per_doc": 10},
    )
    response.raise_for_status()
    rerank = RerankResponse.model_validate(response.json())

    assert rerank.id is not None
    assert rerank.results is not None
    assert len(rerank.results) == 1
    assert rerank.usage.prompt_tokens > 0
    # Beyond vLLM's test: the score is the library's on the document's first 10 tokens.
    tokenizer = qwen3_reranker.scorer.tokenizer  # type: ignore[attr-defined]
    head = tokenizer.decode(tokenizer.encode(long_doc, add_special_tokens=False)[:10])
    assert rerank.results[0].relevance_score == pytest.approx(
        qwen3_reranker.score(query, [head])[0], abs=1e-5
    )


def test_qwen_max_tokens_per_doc_reduces_tokens(server: RemoteOpenAIServer) -> None:
    query = "What is the capital of France?"
    doc = "The capital of France is Paris. " * 5
    response_no_limit = requests.post(
        server.url_for("rerank"), json={"model": MODEL_NAME, "query": query, "documents": [doc]}
    )
    response_no_limit.raise_for_status()
    rerank_no_limit = RerankResponse.model_validate(response_no_limit.json())

    response_with_limit = requests.post(
        server.url_for("rerank"),
        json={"model": MODEL_NAME, "query": query, "documents": [doc], "max_tokens_per_doc": 5},
    )
    response_with_limit.raise_for_status()
    rerank_with_limit = RerankResponse.model_validate(response_with_limit.json())

    assert rerank_with_limit.usage.prompt_tokens < rerank_no_limit.usage.prompt_tokens


# tests/entrypoints/pooling/scoring/test_qwen3_reranker_online.py


def test_score_and_rerank_use_qwen3_reranker_template(
    server: RemoteOpenAIServer, qwen3_reranker: Reranker
) -> None:
    # vLLM counts the tokens of its qwen3_reranker.jinja prompt: here the library's templated pair.
    expected_template_token_count = len(qwen3_reranker.encode(QUERY, [DOCUMENT])[0])
    score_response = requests.post(
        server.url_for("score"), json={"model": MODEL_NAME, "queries": QUERY, "documents": DOCUMENT}
    )
    score_response.raise_for_status()
    score = ScoreResponse.model_validate(score_response.json())

    rerank_response = requests.post(
        server.url_for("rerank"), json={"model": MODEL_NAME, "query": QUERY, "documents": [DOCUMENT]}
    )
    rerank_response.raise_for_status()
    rerank = RerankResponse.model_validate(rerank_response.json())

    assert score.usage.prompt_tokens == expected_template_token_count
    assert rerank.usage.prompt_tokens == expected_template_token_count
    assert len(score.data) == 1
    assert len(rerank.results) == 1
    assert score.data[0].score == pytest.approx(rerank.results[0].relevance_score, rel=0.01)


# tests/entrypoints/pooling/scoring/test_protocol.py (TestRerankRequestValidation), on the wire: vLLM
# validates its RerankRequest model; rerankd's route must accept and refuse the same bodies.


def test_top_n_defaults_to_zero(server: RemoteOpenAIServer) -> None:
    r = requests.post(server.url_for("rerank"), json={"query": "capital of France", "documents": ["Paris"]})
    assert r.status_code == 200 and len(RerankResponse.model_validate(r.json()).results) == 1  # 0: all


@pytest.mark.parametrize("top_n", [0, 1, 2])
def test_non_negative_top_n_is_accepted(server: RemoteOpenAIServer, top_n: int) -> None:
    body = {"query": "capital of France", "documents": ["Paris", "Berlin"], "top_n": top_n}
    r = requests.post(server.url_for("rerank"), json=body)
    assert r.status_code == 200
    assert len(RerankResponse.model_validate(r.json()).results) == (top_n or 2)


def test_negative_top_n_is_rejected(server: RemoteOpenAIServer) -> None:
    body = {"query": "capital of France", "documents": ["Paris", "Berlin"], "top_n": -1}
    r = requests.post(server.url_for("rerank"), json=body)
    assert r.status_code == 400 and "top_n" in r.json()["error"]["message"]


def test_documents_as_content_parts(server: RemoteOpenAIServer) -> None:
    """vLLM's RerankRequest takes `documents` as a ScoreMultiModalParam too (text parts here)."""
    body = {"query": QUERY, "documents": {"content": [{"type": "text", "text": DOCUMENT}]}}
    r = requests.post(server.url_for("rerank"), json=body)
    r.raise_for_status()
    assert RerankResponse.model_validate(r.json()).results[0].document.text == DOCUMENT
