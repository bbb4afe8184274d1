"""Public value types shared by the library, the server, the client and the evaluation harness.

Pure Python: importing this module never pulls torch, FastAPI or httpx.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Document:
    """A document to rank: its text, and optionally an id and metadata carried through unchanged."""

    text: str
    id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)


DocumentLike = str | Document


def as_document(doc: DocumentLike) -> Document:
    """Accept a plain string or a Document; anything else is a caller's mistake worth naming."""
    if isinstance(doc, Document):
        return doc
    if isinstance(doc, str):
        return Document(text=doc)
    raise TypeError(f"documents must be str or rerankd.Document, got {type(doc).__name__}")


@dataclass(frozen=True)
class Span:
    """A passage of a document that made it relevant: `text == document_text[start:end]`, with `start`
    and `end` in code points (Python str indices) of the text as given; `score` is that text's own score
    as a document, on the same scale as the document's."""

    start: int
    end: int
    score: float
    text: str


@dataclass(frozen=True)
class RankedDocument:
    """One result: the document's position in the input (`index`), its score, and the document if asked.
    `spans`: its relevant passages, best first, when asked for (`return_spans`); None otherwise."""

    index: int
    score: float
    document: Document | None = None
    spans: tuple[Span, ...] | None = None

    @property
    def text(self) -> str | None:
        return self.document.text if self.document is not None else None


@dataclass(frozen=True)
class Usage:
    """Tokens the model actually read for a request (after templating and truncation)."""

    prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens


@dataclass(frozen=True)
class RerankResult:
    """Results sorted by score, descending. Iterable, indexable and sized like a list."""

    results: tuple[RankedDocument, ...]
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    # The server's meta.warnings ({index, code, message}: documents cut or chunked, ignored fields),
    # with indices into the documents as the caller passed them.
    warnings: tuple[dict[str, Any], ...] = ()

    def __iter__(self) -> Iterator[RankedDocument]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> RankedDocument:
        return self.results[i]

    @property
    def indices(self) -> list[int]:
        return [r.index for r in self.results]

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.results]

    def top_k(self, k: int) -> RerankResult:
        return RerankResult(results=self.results[:k], model=self.model, usage=self.usage)


@runtime_checkable
class Reranker(Protocol):
    """What the UI and the evaluation harness need: a local model and a remote client both satisfy it."""

    def score(
        self, query: str, documents: Sequence[DocumentLike], *, instruction: str | None = None
    ) -> list[float]: ...

    def rerank(
        self,
        query: str,
        documents: Sequence[DocumentLike],
        *,
        top_n: int | None = None,
        instruction: str | None = None,
        return_documents: bool = False,
    ) -> RerankResult: ...
