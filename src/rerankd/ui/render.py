"""What the page shows, as HTML: the status line, the ranking table, the chart's rows. Pure functions."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rerankd.types import RerankResult, Span

HEADERS = ["rank", "score", "index", "document"]
MAX_LABEL = 28


@dataclass(frozen=True)
class Shown:
    """What the page shows after a click: table rows, chart rows, the status line (HTML)."""

    rows: list[list[Any]]
    chart: list[tuple[str, float]]
    status: str
    model: str
    seconds: float

    @property
    def table(self) -> str:
        return table_html(self.rows)


def status_html(message: str, kind: str = "ok") -> str:
    """The status line; `kind` is ok, error or info. `message` is HTML the caller escaped."""
    icon = {"error": "⚠️ ", "info": ""}.get(kind, "")
    role = ' role="alert"' if kind == "error" else ""
    return f'<div class="rr-status rr-{kind}"{role}>{icon}{message}</div>'


def error_html(message: str) -> str:
    return status_html(html.escape(message), "error")


def highlight(text: str, spans: Sequence[Span] | None) -> str:
    """The document as HTML, its spans inside <mark> (titled with their score), everything escaped."""
    if not spans:
        return html.escape(text)
    out, at = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        if s.start < at or s.end > len(text) or text[s.start : s.end] != s.text:
            continue  # not where it says it is (or overlapping): show the text unmarked
        out.append(html.escape(text[at : s.start]))
        out.append(f'<mark class="rr-span" title="span score {s.score:.4f}">{html.escape(s.text)}</mark>')
        at = s.end
    out.append(html.escape(text[at:]))
    return "".join(out)


def table_html(rows: Sequence[Sequence[Any]]) -> str:
    """The ranking as a plain HTML table (rank, score, index, document): it wraps on a phone, and a
    screen reader reads it as a table. A row's optional fifth item is its spans, marked in the text."""
    if not rows:
        return ""
    head = "".join(f'<th scope="col" class="rr-{h}">{h}</th>' for h in HEADERS)
    body = []
    for row in rows:
        rank, score, index, text = row[:4]
        spans = row[4] if len(row) > 4 else None
        width = max(0.0, min(1.0, float(score))) * 100
        body.append(
            "<tr>"
            f'<td class="rr-rank">{rank}</td>'
            f'<td class="rr-score">{score:.4f}<span class="rr-bar" style="width:{width:.1f}%"></span></td>'
            f'<td class="rr-index">{index}</td>'
            f'<td class="rr-document">{highlight(str(text), spans)}</td>'
            "</tr>"
        )
    return (
        '<table class="rr-table"><caption>Ranking, best first</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def label(index: int, text: str) -> str:
    """A bar's name: the document's input index and the start of its text (unique by the index)."""
    short = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1].rstrip() + "…"
    return f"[{index}] {short}"


def present(result: RerankResult, documents: Sequence[str], seconds: float) -> Shown:
    rows = [
        [rank, round(r.score, 4), r.index, documents[r.index], r.spans] for rank, r in enumerate(result, 1)
    ]
    chart = [(label(r.index, documents[r.index]), round(r.score, 4)) for r in result]
    n, shown = len(documents), len(result)
    what = f"the top <b>{shown}</b> of <b>{n}</b> documents" if shown < n else f"<b>{n}</b> documents"
    took = f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"
    parts = [f"Ranked {what} in <b>{took}</b>", f"model <code>{html.escape(result.model or '?')}</code>"]
    if result.usage.prompt_tokens:
        parts.append(f"{result.usage.prompt_tokens} tokens")
    status = " · ".join(parts)
    notes = [html.escape(str(w.get("message", ""))) for w in result.warnings if w.get("message")]
    if notes:  # what the server did to the documents (cut to fit, chunked), as it says it
        status += "<br>" + "<br>".join(f"⚠ {n}" for n in notes)
    return Shown(rows, chart, status_html(status), result.model, seconds)
