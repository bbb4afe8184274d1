"""Relevant spans, the pure part: which token windows to score, how the best ones are chosen and merged,
and an upper bound on that work that needs no tokenizer. Sans-I/O: `SpanSearch` says which texts to
score and takes their log-odds back, so the sync library (`Reranker`) and the async engine (through
its batcher) run the same algorithm and get the same spans.

The algorithm (docs/spans.md): windows of `span_tokens` document tokens, consecutive ones sharing half,
over the part of the document its score reads; each window's text (edges snapped to whole characters,
whitespace stripped) is scored alone as a document; the best windows are taken, best first, skipping
any that overlaps one taken, up to `max_spans`; taken windows that touch (only whitespace between)
are merged, and a merged span's text is scored again, so every span's score is its own text's. Offsets are code points into the text as given:
`document[start:end] == text`.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rerankd.errors import InvalidRequest
from rerankd.types import Span

DEFAULT_SPAN_TOKENS = 64
MIN_SPAN_TOKENS = 8
DEFAULT_MAX_SPANS = 3
MAX_SPANS = 16

_ZWJ = "\u200d"


@dataclass(frozen=True)
class SpanRequest:
    """What a caller asked for: up to `max_spans` spans from windows of `span_tokens` tokens (None: the
    default, capped to the room the query leaves), for the best `top_n` documents (None: every one)."""

    max_spans: int = DEFAULT_MAX_SPANS
    span_tokens: int | None = None
    top_n: int | None = None

    def __post_init__(self) -> None:
        validate(self.max_spans, self.span_tokens)

    def window_tokens(self, room: int) -> int:
        """The window size for a document with `room` tokens: never more than the room, never under 1."""
        return max(1, min(room, self.span_tokens or DEFAULT_SPAN_TOKENS))


def windows_per_span(room: int, window_tokens: int) -> int:
    """How many adjacent windows one merged span may join and still fit `room` tokens (a token of
    slack each for the whitespace between them)."""
    return max(1, room // (window_tokens + 1))


def validate(max_spans: int | None, span_tokens: int | None, max_length: int | None = None) -> None:
    """The span options' bounds (None: the default); `max_length`, when known, caps `span_tokens`."""
    if max_spans is not None and (
        isinstance(max_spans, bool) or not isinstance(max_spans, int) or not 1 <= max_spans <= MAX_SPANS
    ):
        raise InvalidRequest(f"max_spans must be a whole number from 1 to {MAX_SPANS}, got {max_spans!r}")
    if span_tokens is not None and (
        isinstance(span_tokens, bool)
        or not isinstance(span_tokens, int)
        or span_tokens < MIN_SPAN_TOKENS
        or (max_length is not None and span_tokens > max_length)
    ):
        most = f" to {max_length} (the model's length)" if max_length is not None else " or more"
        raise InvalidRequest(
            f"span_tokens must be a whole number from {MIN_SPAN_TOKENS}{most}, got {span_tokens!r}"
        )


def overlap_of(window_tokens: int) -> int:
    """Consecutive windows share half their tokens, so a passage cut by one window's edge sits whole
    in the next."""
    return window_tokens // 2


def bound_windows(text: str, window_tokens: int, region_tokens: int) -> int:
    """At least as many windows as `text` can give, without tokenizing: a token covers at least one
    UTF-8 byte (byte-level BPE may split one character into several tokens, never a byte), and
    windows are looked for in at most `region_tokens` tokens."""
    step = max(1, window_tokens - overlap_of(window_tokens))
    tokens = min(len(text.encode("utf-8", "surrogatepass")), region_tokens)
    if tokens <= window_tokens:
        return 1
    return math.ceil((tokens - window_tokens) / step) + 1


def _joins(c: str) -> bool:
    """A code point that belongs to the character before it: combining marks, variation selectors,
    emoji skin tones and tags, a zero-width joiner."""
    o = ord(c)
    return (
        unicodedata.category(c) in ("Mn", "Mc", "Me")
        or c == _ZWJ
        or 0xFE00 <= o <= 0xFE0F
        or 0x1F3FB <= o <= 0x1F3FF
        or 0xE0020 <= o <= 0xE007F
    )


def _inside(text: str, i: int) -> bool:
    """Whether a cut before text[i] would split one user-perceived character (0 < i < len(text))."""
    return _joins(text[i]) or text[i - 1] == _ZWJ or text[i - 1 : i + 1] == "\r\n"


def tidy(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A window's character range made presentable: never a character cut from its combining marks
    (the tokenizer's offsets can leave them out), nor a CRLF split, then stripped of edge whitespace.
    None when nothing but whitespace is left."""
    n = len(text)
    start, end = max(0, min(start, n)), max(0, min(end, n))
    while 0 < start < n and _inside(text, start):
        start -= 1
    while 0 < end < n and _inside(text, end):
        end += 1
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


@dataclass(frozen=True)
class _Group:
    start: int
    end: int
    score: float | None  # known when the group is one window


def choose(
    text: str,
    windows: Sequence[tuple[int, int]],
    logits: Sequence[float],
    max_spans: int,
    max_merged: int | None = None,
) -> list[_Group]:
    """The best windows, best first, skipping any that overlaps one already taken (windows overlap by
    half: the best-placed one of a passage wins), at most `max_spans`; taken windows with nothing but
    whitespace between them are then merged into one span, of at most `max_merged` windows (so that a
    merged span still fits the model and its score reads all of it)."""
    taken: list[tuple[int, int, float]] = []
    for i in sorted(range(len(windows)), key=lambda i: (-logits[i], windows[i][0])):
        a, b = windows[i]
        if all(b <= s or a >= e for s, e, _ in taken):
            taken.append((a, b, logits[i]))
            if len(taken) == max_spans:
                break
    groups: list[list[tuple[int, int, float]]] = []
    for w in sorted(taken):
        full = max_merged is not None and groups and len(groups[-1]) >= max_merged
        if groups and not full and not text[groups[-1][-1][1] : w[0]].strip():
            groups[-1].append(w)
        else:
            groups.append([w])
    return [_Group(g[0][0], g[-1][1], g[0][2] if len(g) == 1 else None) for g in groups]


class SpanSearch:
    """One request's span search, driven by its caller in two rounds:

        texts = search.windows_to_score()      # score each text alone, as a document
        texts = search.merged_to_score(logits) # the merged spans' texts, to score the same way
        spans = search.spans(logits, to_score) # per document, best first

    `windows(doc) -> [(start, end)]` are the tokenizer's window ranges for one document."""

    def __init__(
        self,
        documents: Sequence[str],
        windows: Callable[[str], Sequence[tuple[int, int]]],
        max_spans: int,
        max_merged: int | None = None,
    ) -> None:
        self.documents = list(documents)
        self.max_spans = max_spans
        self.max_merged = max_merged
        self._windows: list[list[tuple[int, int]]] = []
        for doc in self.documents:
            seen: dict[tuple[int, int], None] = {}
            for a, b in windows(doc):
                r = tidy(doc, a, b)
                if r is not None:
                    seen.setdefault(r, None)
            self._windows.append(list(seen))
        self._groups: list[list[_Group]] = []

    def windows_to_score(self) -> list[str]:
        return [doc[a:b] for doc, ws in zip(self.documents, self._windows, strict=True) for a, b in ws]

    def merged_to_score(self, logits: Sequence[float]) -> list[str]:
        it = iter(logits)
        self._groups = []
        for doc, ws in zip(self.documents, self._windows, strict=True):
            mine = [next(it) for _ in ws]
            self._groups.append(choose(doc, ws, mine, self.max_spans, self.max_merged))
        return [
            doc[g.start : g.end]
            for doc, gs in zip(self.documents, self._groups, strict=True)
            for g in gs
            if g.score is None
        ]

    def spans(self, logits: Sequence[float], score: Callable[[float], float]) -> list[tuple[Span, ...]]:
        """Per document, its spans best first (ties: earlier first); `score` maps log-odds to the
        answer's scale (a probability, or the log-odds themselves)."""
        it = iter(logits)
        out: list[tuple[Span, ...]] = []
        for doc, groups in zip(self.documents, self._groups, strict=True):
            found = [(g.start, g.end, g.score if g.score is not None else next(it)) for g in groups]
            found.sort(key=lambda s: (-s[2], s[0]))
            out.append(tuple(Span(a, b, score(x), doc[a:b]) for a, b, x in found))
        return out
