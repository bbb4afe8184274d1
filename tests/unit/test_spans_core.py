"""The pure span search (`rerankd.spans`) and its rendering, without a model: window edges snapped to
whole characters, the choice of windows and their merging, the work bound, the UI's <mark>s, the
client's strict parsing, and the engine's span path over the torch-free FakeScorer."""

from __future__ import annotations

import pytest

from rerankd.client._dialects import Request, parse_rerank_answer
from rerankd.client.errors import InvalidResponseError
from rerankd.errors import InvalidRequest
from rerankd.spans import SpanRequest, SpanSearch, bound_windows, choose, tidy, windows_per_span
from rerankd.types import Span
from rerankd.ui.render import highlight


@pytest.mark.parametrize(
    ("text", "start", "end", "want"),
    [
        ("  hello world  ", 0, 15, "hello world"),
        ("cafe\u0301 bar", 0, 4, "cafe\u0301"),  # the mark the tokenizer's offsets leave out
        ("xe\u0301\u0302y", 2, 4, "e\u0301\u0302"),  # starts on a mark: back to its base
        ("a\r\nb", 0, 2, "a"),  # never half a CRLF (then stripped)
        ("a\r\nb", 2, 4, "b"),
        ("hi 👨\u200d👩\u200d👧 yo", 3, 5, "👨\u200d👩\u200d👧"),  # a ZWJ family stays whole
        ("ok 👍🏽 fine", 3, 4, "👍🏽"),  # the skin tone stays with its emoji
        ("   ", 0, 3, None),
    ],
)
def test_tidy(text: str, start: int, end: int, want: str | None) -> None:
    got = tidy(text, start, end)
    assert (None if got is None else text[got[0] : got[1]]) == want


def test_choose_skips_overlaps_and_merges_touching_windows() -> None:
    text = "aaaa bbbb cccc dddd eeee"
    windows = [(0, 9), (5, 14), (10, 19), (15, 24)]  # half-overlapping, as the scorer gives them
    # The best (5,14) wins over both its neighbours; then (15,24): it touches (5,14) → one span.
    groups = choose(text, windows, [0.1, 0.9, 0.5, 0.4], max_spans=3)
    assert [(g.start, g.end, g.score) for g in groups] == [(5, 24, None)]  # merged: to be re-scored
    apart = choose("aaaa bbbb X cccc dddd", [(0, 4), (12, 16)], [1.0, 2.0], max_spans=3)
    assert [(g.start, g.end, g.score) for g in apart] == [(0, 4, 1.0), (12, 16, 2.0)]
    assert len(choose(text, windows, [0.1, 0.9, 0.5, 0.4], max_spans=1)) == 1
    # A merged span never joins more windows than fit the model: here one each, so nothing merges.
    capped = choose(text, windows, [0.1, 0.9, 0.5, 0.4], max_spans=3, max_merged=1)
    assert [(g.start, g.end) for g in capped] == [(5, 14), (15, 24)]
    assert windows_per_span(room=490, window_tokens=64) == 7 and windows_per_span(10, 64) == 1


def test_search_rounds() -> None:
    docs = ["one two three four", "x"]

    def windows(d: str) -> list[tuple[int, int]]:
        return [(0, 7), (8, 18)] if len(d) > 1 else [(0, 1)]

    search = SpanSearch(docs, windows, max_spans=2)
    assert search.windows_to_score() == ["one two", "three four", "x"]
    merged = search.merged_to_score([1.0, 3.0, 0.5])
    assert merged == ["one two three four"]  # the two windows touch: merged, scored again
    found = search.spans([2.0], lambda x: x * 10)
    assert found == [(Span(0, 18, 20.0, "one two three four"),), (Span(0, 1, 5.0, "x"),)]


def test_bound_and_request_checks() -> None:
    assert bound_windows("", 8, 100) == 1
    assert bound_windows("x" * 100, 8, 10_000) == 24  # 100 bytes: (100 - 8) / 4 + 1 windows at most
    assert bound_windows("x" * 100, 8, 16) == 3  # only the tokens the score reads
    assert bound_windows("👍" * 25, 8, 10_000) == 24  # 4 bytes each: one emoji can be 4 tokens
    for bad in ({"max_spans": 0}, {"max_spans": 17}, {"span_tokens": 7}, {"max_spans": True}):
        with pytest.raises(InvalidRequest):
            SpanRequest(**bad)  # type: ignore[arg-type]
    assert SpanRequest(span_tokens=100).window_tokens(room=40) == 40


def test_highlight_escapes_and_marks() -> None:
    text = "a <b> & c"
    html = highlight(text, [Span(2, 5, 0.5, "<b>"), Span(8, 9, 0.25, "c")])
    assert html == (
        'a <mark class="rr-span" title="span score 0.5000">&lt;b&gt;</mark> &amp; '
        '<mark class="rr-span" title="span score 0.2500">c</mark>'
    )
    assert highlight(text, [Span(0, 3, 1.0, "zzz")]) == "a &lt;b&gt; &amp; c"  # not where it says
    assert highlight(text, None) == "a &lt;b&gt; &amp; c"


def test_client_parses_spans_strictly() -> None:
    request = Request("POST", "/v1/rerank", n_docs=1, expected=1)
    ok = {
        "results": [
            {
                "index": 0,
                "relevance_score": 0.5,
                "spans": [{"start": 1, "end": 3, "score": 0.4, "text": "é👍"}],
            }
        ]
    }
    assert parse_rerank_answer(ok, request).spans == {0: (Span(1, 3, 0.4, "é👍"),)}
    for bad in (
        {"start": 1, "end": 3, "score": 0.4, "text": "abc"},
        {"start": 3, "end": 1, "score": 0, "text": ""},
        "x",
    ):
        with pytest.raises(InvalidResponseError, match="span"):
            parse_rerank_answer({"results": [{"index": 0, "relevance_score": 0.5, "spans": [bad]}]}, request)


async def test_engine_spans_over_the_fake_scorer(fake_engine) -> None:  # type: ignore[no-untyped-def]
    filler = "Bananas are yellow and sweet and soft."
    docs = [f"{filler} {filler} The capital of France is Paris. {filler} {filler}", "capital France"]
    await fake_engine.start()
    try:
        plain = await fake_engine.rerank_scores("capital of France", docs)
        scored = await fake_engine.rerank_scores(
            "capital of France", docs, spans=SpanRequest(max_spans=1, span_tokens=8, top_n=1)
        )
        alone = await fake_engine.rerank_scores("capital of France", [s.text for s in scored.spans[0] or ()])
    finally:
        await fake_engine.stop()
    assert scored.scores == plain.scores and plain.scores[0] > plain.scores[1]
    assert scored.spans[1] is None, "past top_n: not searched"
    found = scored.spans[0]
    assert found and all(docs[0][s.start : s.end] == s.text for s in found)
    (best,) = found
    assert "capital of France" in best.text and len(best.text) < len(docs[0]) / 3, best
    assert [s.score for s in found] == alone.scores
    assert scored.prompt_tokens > plain.prompt_tokens
