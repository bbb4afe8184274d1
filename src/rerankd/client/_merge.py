"""Slicing a long document list into requests of at most `max_docs_per_request`, and merging the
slices' answers back: global indices, scores in input order, one ranking with `top_n` after the merge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rerankd.client._dialects import Request, SliceAnswer
from rerankd.client.errors import InvalidResponseError
from rerankd.types import Document, RankedDocument, RerankResult, Usage


def plan_slices(n: int, max_docs: int | None) -> list[tuple[int, int]]:
    """[start, end) slices of at most `max_docs` documents (one slice when None)."""
    if max_docs is None or n <= max_docs:
        return [(0, n)]
    return [(i, min(i + max_docs, n)) for i in range(0, n, max_docs)]


def merge_scores(chunks: Sequence[tuple[Request, SliceAnswer]], n: int) -> list[float]:
    """Scores in input order from every slice's answer, with local indices made global."""
    scores: list[float | None] = [None] * n
    for request, chunk in chunks:
        for index, score in chunk.items:
            scores[request.offset + index] = score
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise InvalidResponseError(f"the answers have no score for documents {missing[:10]}")
    return [s for s in scores if s is not None]


def merge_ranking(
    chunks: Sequence[tuple[Request, SliceAnswer]],
    documents: Sequence[Document],
    *,
    top_n: int | None,
    return_documents: bool,
    model: str,
) -> RerankResult:
    """One ranking from every slice's answer: global indices, sorted by score (ties keep input
    order), `top_n` applied after the merge."""
    merged = [(request.offset + i, s) for request, chunk in chunks for i, s in chunk.items]
    spans = {request.offset + i: v for request, chunk in chunks for i, v in chunk.spans.items()}
    merged.sort(key=lambda p: (-p[1], p[0]))
    if top_n is not None:
        merged = merged[:top_n]
    models = [c.model for _, c in chunks if c.model]
    return RerankResult(
        results=tuple(
            RankedDocument(
                index=i, score=s, document=documents[i] if return_documents else None, spans=spans.get(i)
            )
            for i, s in merged
        ),
        model=models[0] if models else model,
        usage=Usage(prompt_tokens=sum(c.prompt_tokens for _, c in chunks)),
        warnings=tuple(_global(w, request.offset) for request, chunk in chunks for w in chunk.warnings),
    )


def _global(warning: dict[str, Any], offset: int) -> dict[str, Any]:
    index = warning.get("index")
    if isinstance(index, int) and not isinstance(index, bool):
        return {**warning, "index": index + offset}
    return warning


__all__ = ["merge_ranking", "merge_scores", "plan_slices"]
