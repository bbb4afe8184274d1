"""llama.cpp's own rerank tests, run against rerankd.

Source: https://github.com/ggml-org/llama.cpp `tools/server/tests/unit/test_rerank.py` (read at commit
2f6903434e8d98d425ed0f960c3cd6e9ebd3651e; MIT licence, Copyright the ggml authors). Adapted only at the
fixture: `server` is rerankd serving the tiny Qwen3 model (the `server` session fixture in
tests/conftest.py) behind llama.cpp's `make_request` interface. Assertions tied to llama.cpp's model
(jina-reranker-v1-tiny: which document ranks first and last, the exact token counts) compare with
rerankd's library scores and token counts instead; each such line says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from rerankd import Reranker
from rerankd.testing.servers import RunningServer


@dataclass
class Response:
    status_code: int
    body: Any


class ServerPreset:
    """llama.cpp's utils.ServerProcess, as far as test_rerank.py uses it: rerankd is already running."""

    def __init__(self, running: RunningServer) -> None:
        self.url = running.url

    def start(self) -> None:
        pass

    def make_request(self, method: str, path: str, data: Any = None) -> Response:
        r = httpx.request(method, f"{self.url}{path}", json=data, timeout=60)
        return Response(r.status_code, r.json())


@pytest.fixture
def server(server: RunningServer) -> ServerPreset:  # the conftest session server, llama.cpp's interface
    return ServerPreset(server)


@pytest.fixture
def library(qwen3_reranker: Reranker) -> Reranker:
    return qwen3_reranker


TEST_DOCUMENTS = [
    "A machine is a physical system that uses power to apply forces and control movement to perform an action. The term is commonly applied to artificial devices, such as those employing engines or motors, but also to natural biological macromolecules, such as molecular machines.",
    "Learning is the process of acquiring new understanding, knowledge, behaviors, skills, values, attitudes, and preferences. The ability to learn is possessed by humans, non-human animals, and some machines; there is also evidence for some kind of learning in certain plants.",
    "Machine learning is a field of study in artificial intelligence concerned with the development and study of statistical algorithms that can learn from data and generalize to unseen data, and thus perform tasks without explicit instructions.",
    "Paris, capitale de la France, est une grande ville européenne et un centre mondial de l'art, de la mode, de la gastronomie et de la culture. Son paysage urbain du XIXe siècle est traversé par de larges boulevards et la Seine.",
]
QUERY = "Machine learning is"


def _extremes(library: Reranker) -> tuple[int, int]:
    """Model-bound in llama.cpp (most relevant 2, least 3 with its weights): here, the library's."""
    scores = library.score(QUERY, TEST_DOCUMENTS)
    return scores.index(max(scores)), scores.index(min(scores))


def test_rerank(server: ServerPreset, library: Reranker) -> None:
    server.start()
    res = server.make_request("POST", "/rerank", data={"query": QUERY, "documents": TEST_DOCUMENTS})
    assert res.status_code == 200
    assert len(res.body["results"]) == 4

    most_relevant = res.body["results"][0]
    least_relevant = res.body["results"][0]
    for doc in res.body["results"]:
        if doc["relevance_score"] > most_relevant["relevance_score"]:
            most_relevant = doc
        if doc["relevance_score"] < least_relevant["relevance_score"]:
            least_relevant = doc

    assert most_relevant["relevance_score"] > least_relevant["relevance_score"]
    assert (most_relevant["index"], least_relevant["index"]) == _extremes(library)  # was 2, 3


def test_rerank_tei_format(server: ServerPreset, library: Reranker) -> None:
    server.start()
    res = server.make_request("POST", "/rerank", data={"query": QUERY, "texts": TEST_DOCUMENTS})
    assert res.status_code == 200
    assert len(res.body) == 4

    most_relevant = res.body[0]
    least_relevant = res.body[0]
    for doc in res.body:
        if doc["score"] > most_relevant["score"]:
            most_relevant = doc
        if doc["score"] < least_relevant["score"]:
            least_relevant = doc

    assert most_relevant["score"] > least_relevant["score"]
    assert (most_relevant["index"], least_relevant["index"]) == _extremes(library)  # was 2, 3


@pytest.mark.parametrize("documents", [[], None, 123, [1, 2, 3]])
def test_invalid_rerank_req(server: ServerPreset, documents: Any) -> None:
    server.start()
    res = server.make_request("POST", "/rerank", data={"query": QUERY, "documents": documents})
    assert res.status_code == 400
    assert "error" in res.body


@pytest.mark.parametrize(
    ("query", "doc1", "doc2"),
    [
        ("Machine learning is", "A machine", "Learning is"),
        ("Which city?", "Machine learning is ", "Paris, capitale de la"),
    ],
)
def test_rerank_usage(server: ServerPreset, library: Reranker, query: str, doc1: str, doc2: str) -> None:
    server.start()
    res = server.make_request("POST", "/rerank", data={"query": query, "documents": [doc1, doc2]})
    assert res.status_code == 200
    assert res.body["usage"]["prompt_tokens"] == res.body["usage"]["total_tokens"]
    # Model-bound in llama.cpp (19 and 26 tokens with its tokenizer and template): the library's count.
    n_tokens = sum(len(e) for e in library.encode(query, [doc1, doc2]))
    assert res.body["usage"]["prompt_tokens"] == n_tokens


TOP_N = [
    (None, len(TEST_DOCUMENTS)),  # no top_n parameter
    (2, 2),
    (4, 4),
    (99, len(TEST_DOCUMENTS)),  # higher than available docs
]


@pytest.mark.parametrize(("top_n", "expected_len"), TOP_N)
def test_rerank_top_n(server: ServerPreset, top_n: int | None, expected_len: int) -> None:
    server.start()
    data: dict[str, Any] = {"query": QUERY, "documents": TEST_DOCUMENTS}
    if top_n is not None:
        data["top_n"] = top_n
    res = server.make_request("POST", "/rerank", data=data)
    assert res.status_code == 200
    assert len(res.body["results"]) == expected_len


@pytest.mark.parametrize(("top_n", "expected_len"), TOP_N)
def test_rerank_tei_top_n(server: ServerPreset, top_n: int | None, expected_len: int) -> None:
    server.start()
    data: dict[str, Any] = {"query": QUERY, "texts": TEST_DOCUMENTS}
    if top_n is not None:
        data["top_n"] = top_n
    res = server.make_request("POST", "/rerank", data=data)
    assert res.status_code == 200
    assert len(res.body) == expected_len


# Not ported: test_embeddings_rejected_with_rank_pooling (/embeddings, /v1/embeddings): rerankd serves no
# embeddings routes (404), see docs/dialects.md.
