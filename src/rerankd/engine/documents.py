"""Moved: documents are cut behind the Scorer now (`Scorer.encode(max_document_tokens=)` and
`Scorer.encode_chunks`), in `rerankd.models.documents`; these names stay for existing callers."""

from rerankd.models.documents import chunk_text, truncate_text

__all__ = ["chunk_text", "truncate_text"]
