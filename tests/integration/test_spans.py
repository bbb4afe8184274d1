"""Relevant spans (`return_spans`): the library, the server and the client over the tiny Qwen3 model with
the real tokenizer (and a tiny cross-encoder). Offsets are code points into the text as sent, for CJK,
astral emoji, combining marks and CRLF text; every span's score is the library's score of its text
alone; spans never overlap, come best first, at most max_spans; asking for spans leaves the documents'
scores as they were; the work's bound is checked before any tokenization."""

from __future__ import annotations

import itertools
import json
import unicodedata
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from rerankd import Reranker, Span
from rerankd.server.app import create_app
from rerankd.server.settings import ServerSettings
from rerankd.spans import bound_windows, overlap_of
from rerankd.testing.asgi import app_client

QUERY = "What is the capital of France?"
CJK = (
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。" * 3
    + "巴黎是法国的首都。"
    + "上海是一座港口城市。" * 3
)
EMOJI = (
    "🍎 Apples 🍏 grow on trees 🌳. " * 4
    + "Paris 🇫🇷 is the capital of France 👨‍👩‍👧‍👦. "
    + "Bananas 🍌 are yellow. " * 4
)
COMBINING = (
    "Cafe\u0301s in Zu\u0308rich serve re\u0301sume\u0301s. " * 3
    + "Pa\u0301ris is the capita\u0300l of Fra\u0302nce. "
    + "Ske\u0301ptical Ame\u0301lie\u0301 o\u0308ffers na\u0131\u0308ve cre\u0300me bru\u0302le\u0301e. " * 3
)
CRLF = (
    "First line about rivers.\r\nSecond line about mountains.\r\n\r\n" * 3
    + "Paris is the capital of France.\r\n"
    + "Last line.\r\n" * 4
)
DOCS = [CJK, EMOJI, COMBINING, CRLF, "Paris.", "   "]


def same_ranking(got: list[dict[str, Any]], plain: list[dict[str, Any]]) -> None:
    """Asking for spans changes neither the ranking nor any relevance_score."""
    assert [r["index"] for r in got] == [r["index"] for r in plain]
    assert [r["relevance_score"] for r in got] == pytest.approx(
        [r["relevance_score"] for r in plain], abs=1e-6
    )


def check_spans(doc: str, spans: Sequence[Any], max_spans: int) -> None:
    """Offsets hold, the spans are whole characters, non-overlapping, best first, at most max_spans."""
    assert len(spans) <= max_spans
    get = (lambda s, k: s[k]) if spans and isinstance(spans[0], dict) else getattr
    ranges = []
    for s in spans:
        start, end, text = get(s, "start"), get(s, "end"), get(s, "text")
        assert doc[start:end] == text and text
        assert text == text.strip(), "edges are stripped of whitespace"
        assert unicodedata.category(text[0]) not in ("Mn", "Mc", "Me"), "a span never starts on a mark"
        if end < len(doc):
            assert unicodedata.category(doc[end]) not in ("Mn", "Mc", "Me"), "nor leaves its marks behind"
            assert doc[end - 1 : end + 1] != "\r\n" and doc[end - 1] != "\u200d"
        ranges.append((start, end))
    ranges.sort()
    for (_, e1), (s2, _) in itertools.pairwise(ranges):
        assert e1 <= s2 and doc[e1:s2].strip(), "non-overlapping, and touching ones are merged"
    scores = [get(s, "score") for s in spans]
    assert scores == sorted(scores, reverse=True)


def test_library_offsets_and_scores(qwen3_reranker: Reranker) -> None:
    result = qwen3_reranker.rerank(QUERY, DOCS, return_spans=True, span_tokens=12)
    plain = qwen3_reranker.rerank(QUERY, DOCS)
    assert [(r.index, r.score) for r in result] == [(r.index, r.score) for r in plain]
    assert all(r.spans is None for r in plain)
    for r in result:
        assert r.spans is not None
        check_spans(DOCS[r.index], r.spans, 3)
        if r.index == 5:  # only whitespace: nothing to point at
            assert r.spans == ()
            continue
        assert r.spans, f"document {r.index} has spans"
        alone = qwen3_reranker.score(QUERY, [s.text for s in r.spans])
        assert [s.score for s in r.spans] == pytest.approx(alone, abs=1e-5)
    # A document longer than a window gives several windows, of which the best are kept.
    assert max(len(r.spans or ()) for r in result) > 1


def test_library_max_spans_and_top_n(qwen3_reranker: Reranker) -> None:
    one = qwen3_reranker.rerank(QUERY, DOCS, return_spans=True, max_spans=1, span_tokens=8, top_n=2)
    assert len(one) == 2
    for r in one:
        assert r.spans is not None and len(r.spans) == 1
        check_spans(DOCS[r.index], r.spans, 1)
    many = qwen3_reranker.rerank(QUERY, [EMOJI], return_spans=True, max_spans=16, span_tokens=8)
    assert many[0].spans is not None and 1 < len(many[0].spans) <= 16
    check_spans(EMOJI, many[0].spans, 16)


def test_library_refuses_bad_options(qwen3_reranker: Reranker) -> None:
    from rerankd.errors import InvalidRequest

    for kw in ({"max_spans": 0}, {"max_spans": 17}, {"span_tokens": 7}, {"span_tokens": 10**6}):
        with pytest.raises(InvalidRequest, match=r"max_spans|span_tokens"):
            qwen3_reranker.rerank(QUERY, DOCS, return_spans=True, **kw)  # type: ignore[arg-type]


def test_cross_encoder_spans(cross_encoder_dir: Any) -> None:
    ce = Reranker.from_pretrained(str(cross_encoder_dir), device="cpu", dtype="float32")
    docs = [EMOJI, COMBINING, CRLF]
    result = ce.rerank(QUERY, docs, return_spans=True, span_tokens=8)
    assert [r.score for r in result] == [r.score for r in ce.rerank(QUERY, docs)]
    for r in result:
        assert r.spans
        check_spans(docs[r.index], r.spans, 3)
        assert [s.score for s in r.spans] == pytest.approx(
            ce.score(QUERY, [s.text for s in r.spans]), abs=1e-5
        )


def test_the_bound_is_an_upper_bound(qwen3_reranker: Reranker) -> None:
    """The count checked before tokenizing is never below the windows the tokenizer then gives."""
    scorer = qwen3_reranker.scorer
    for doc in [*DOCS, "x" * 3000, "👍" * 500, "a\u0301" * 700]:
        for size in (8, 13, 64):
            for region in (16, 100, 10_000):
                got = scorer.windows(
                    doc, window_tokens=size, overlap_tokens=overlap_of(size), max_tokens=region
                )
                assert len(got) <= bound_windows(doc, size, region)


# -- the server ---------------------------------------------------------------------------------------


@asynccontextmanager
async def served(reranker: Reranker) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ServerSettings(model="tiny", ui=False), reranker=reranker)
    async with app_client(app) as client:
        yield client


async def post(client: httpx.AsyncClient, body: dict[str, Any], path: str = "/v1/rerank") -> Any:
    # ensure_ascii: astral code points travel as surrogate pairs (\\ud83c\\udf4e), as many clients send them
    r = await client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_server_spans_match_the_library(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker) as client:
        for path in ("/v1/rerank", "/v2/rerank", "/rerank"):
            body = {"query": QUERY, "documents": DOCS, "return_spans": True, "span_tokens": 12}
            answer = await post(client, body, path)
            plain = await post(client, {"query": QUERY, "documents": DOCS}, path)
            same_ranking(answer["results"], plain["results"])
            assert all("spans" not in r for r in plain["results"]), "absent unless asked for"
            assert not [w for w in answer["meta"]["warnings"] if w["code"] == "ignored_field"]
            library = {
                r.index: r.spans
                for r in qwen3_reranker.rerank(QUERY, DOCS, return_spans=True, span_tokens=12)
            }
            for r in answer["results"]:
                doc = DOCS[r["index"]]
                check_spans(doc, r["spans"], 3)
                assert [(s["start"], s["end"]) for s in r["spans"]] == [
                    (s.start, s.end) for s in library[r["index"]] or ()
                ]
                if r["spans"]:
                    alone = qwen3_reranker.score(QUERY, [s["text"] for s in r["spans"]])
                    assert [s["score"] for s in r["spans"]] == pytest.approx(alone, abs=1e-5)


async def test_server_with_chunks_raw_and_top_n(qwen3_reranker: Reranker) -> None:
    long = " ".join([CRLF, EMOJI, CJK, COMBINING] * 2)
    docs = [long, CJK, "Gravity."]
    async with served(qwen3_reranker) as client:
        common = {"query": QUERY, "documents": docs, "max_chunks_per_doc": 4, "max_tokens_per_doc": 48}
        plain = await post(client, common)
        answer = await post(client, {**common, "return_spans": True, "max_spans": 2, "span_tokens": 16})
        assert [r["relevance_score"] for r in answer["results"]] == pytest.approx(
            [r["relevance_score"] for r in plain["results"]], abs=1e-6
        )
        for r in answer["results"]:
            check_spans(docs[r["index"]], r["spans"], 2)
        # Spans are looked for where the chunks read: within 4 chunks of 48 tokens.
        offsets = qwen3_reranker.scorer.tokenizer(long, add_special_tokens=False, return_offsets_mapping=True)
        read_to = offsets["offset_mapping"][48 + 3 * (48 - 24) - 1][1]
        top = next(r for r in answer["results"] if r["index"] == 0)
        assert all(s["end"] <= read_to + 2 for s in top["spans"])

        raw = await post(
            client, {"query": QUERY, "documents": docs, "return_spans": True, "raw_scores": True, "top_n": 1}
        )
        (best,) = raw["results"]
        assert best["spans"], "the one result kept has spans"
        logits = qwen3_reranker.logits(qwen3_reranker.encode(QUERY, [s["text"] for s in best["spans"]]))
        assert [s["score"] for s in best["spans"]] == pytest.approx(logits, abs=1e-5)


async def test_tei_has_no_slot_for_spans(qwen3_reranker: Reranker) -> None:
    async with served(qwen3_reranker) as client:
        answer = await post(client, {"query": QUERY, "texts": DOCS, "return_spans": True}, "/rerank")
    assert isinstance(answer, list) and all("spans" not in r for r in answer)


class Counting:
    """Counts every call into the scorer's tokenizing methods."""

    def __init__(self, scorer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        for name in ("encode", "encode_chunks", "room", "windows"):
            real = getattr(scorer, name)

            def counted(*a: Any, _real: Any = real, **kw: Any) -> Any:
                self.calls += 1
                return _real(*a, **kw)

            monkeypatch.setattr(scorer, name, counted)


async def test_limits_refuse_before_any_tokenization(
    qwen3_reranker: Reranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = ["x " * 1500] * 40  # 40 documents of 3000 bytes: ~375 windows of 8 tokens each
    async with served(qwen3_reranker) as client:
        counting = Counting(qwen3_reranker.scorer, monkeypatch)
        cases = [
            ({"documents": many, "return_spans": True, "span_tokens": 8}, "return_spans"),
            ({"documents": DOCS, "return_spans": True, "max_spans": 17}, "max_spans"),
            ({"documents": DOCS, "return_spans": True, "max_spans": 0}, "max_spans"),
            ({"documents": DOCS, "return_spans": True, "span_tokens": 4}, "span_tokens"),
            ({"documents": DOCS, "return_spans": True, "span_tokens": 10**6}, "span_tokens"),
            ({"documents": DOCS, "return_spans": True, "span_tokens": "many"}, "span_tokens"),
        ]
        for body, field in cases:
            r = await client.post("/v1/rerank", json={"query": QUERY, **body})
            assert r.status_code == 400, r.text
            assert field in r.text
        # Spans x chunks: windows are looked for where the chunks read, so chunking multiplies them.
        wide = ["y " * 20_000] * 4
        cut = {"documents": wide, "return_spans": True, "span_tokens": 8, "max_tokens_per_doc": 64}
        r = await client.post("/v1/rerank", json={"query": QUERY, **cut, "max_chunks_per_doc": 64})
        assert r.status_code == 400 and "return_spans" in r.text, r.text
        assert counting.calls == 0, "refused before the scorer tokenized anything"
        r = await client.post("/v1/rerank", json={"query": QUERY, **cut})
        assert r.status_code == 200, r.text
        # The same documents fit with a larger window or a smaller top_n.
        assert (
            await client.post(
                "/v1/rerank", json={"query": QUERY, "documents": many[:2], "return_spans": True}
            )
        ).status_code == 200
        assert counting.calls > 0


# -- the client ---------------------------------------------------------------------------------------


def test_client_round_trip(server: Any, qwen3_reranker: Reranker) -> None:
    from rerankd import Document, RerankClient
    from rerankd.client.errors import BadRequestError

    with RerankClient(server.url, max_docs_per_request=2) as client:
        got = client.rerank(QUERY, DOCS, return_spans=True, span_tokens=12, max_spans=2, top_n=4)
        plain = client.rerank(QUERY, [Document(d) for d in DOCS], top_n=4)
        with pytest.raises(BadRequestError, match="max_spans"):
            client.rerank(QUERY, DOCS, return_spans=True, max_spans=99)
    assert [r.index for r in got] == [r.index for r in plain]
    assert [r.score for r in got] == pytest.approx([r.score for r in plain], abs=1e-6)
    assert all(r.spans is None for r in plain)
    for r in got:
        assert r.spans is not None and all(isinstance(s, Span) for s in r.spans)
        check_spans(DOCS[r.index], r.spans, 2)
        if r.spans:
            alone = qwen3_reranker.score(QUERY, [s.text for s in r.spans])
            assert [s.score for s in r.spans] == pytest.approx(alone, abs=1e-5)


def test_client_refuses_spans_from_other_providers() -> None:
    from rerankd import RerankClient
    from rerankd.client.errors import BadRequestError

    with (
        RerankClient("http://127.0.0.1:9", provider="tei") as client,
        pytest.raises(BadRequestError, match="rerankd"),
    ):
        client.rerank(QUERY, DOCS, return_spans=True)
