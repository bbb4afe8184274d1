"""Pure ranking logic: scores in input order → results sorted by score, cut to top_n."""

from __future__ import annotations

from collections.abc import Sequence

from rerankd.errors import InvalidRequest
from rerankd.types import Document, RankedDocument


def validate_top_n(top_n: int | None) -> None:
    if top_n is None:
        return
    if isinstance(top_n, bool) or not isinstance(top_n, int):
        raise InvalidRequest(f"top_n must be a positive integer or null, got {top_n!r}")
    if top_n <= 0:
        raise InvalidRequest(f"top_n must be a positive integer (or omitted for all documents), got {top_n}")


def rank(
    scores: Sequence[float],
    documents: Sequence[Document] | None = None,
    *,
    top_n: int | None = None,
    return_documents: bool = False,
) -> tuple[RankedDocument, ...]:
    """Sort by score, descending; ties keep input order. `top_n` is clamped to the number of documents."""
    validate_top_n(top_n)
    if return_documents and documents is None:
        raise ValueError("return_documents needs the documents")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if top_n is not None:
        order = order[:top_n]
    return tuple(
        RankedDocument(
            index=i,
            score=float(scores[i]),
            document=documents[i] if return_documents and documents is not None else None,
        )
        for i in order
    )


def max_pool(chunk_scores: Sequence[float], owners: Sequence[int], n_documents: int) -> list[float]:
    """Each document's score is its best chunk's score. `owners[k]` is the document of chunk k."""
    best = [float("-inf")] * n_documents
    for score, owner in zip(chunk_scores, owners, strict=True):
        if score > best[owner]:
            best[owner] = score
    missing = [i for i, s in enumerate(best) if s == float("-inf")]
    if missing:
        raise ValueError(f"documents {missing} have no chunk")
    return best
