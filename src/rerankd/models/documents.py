"""Document length handling before templating, behind the scorers: truncation to n tokens and
overlapping chunks.

Cuts fall on token boundaries (from the tokenizer's offsets), so a chunk never splits a character.
"""

from __future__ import annotations

from typing import Any

from rerankd.errors import InvalidRequest


def _offsets(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [tuple(o) for o in enc["offset_mapping"]]


def truncate_text(tokenizer: Any, text: str, max_tokens: int) -> str:
    """The longest head of `text` that is at most `max_tokens` tokens."""
    if max_tokens < 1:  # offsets[-1] below would keep the whole text
        raise InvalidRequest(f"a document cut to {max_tokens} tokens keeps nothing; send at least 1")
    offsets = _offsets(tokenizer, text)
    if len(offsets) <= max_tokens:
        return text
    return text[: offsets[max_tokens - 1][1]]


def chunk_text(tokenizer: Any, text: str, chunk_tokens: int, overlap: int, max_chunks: int) -> list[str]:
    """Up to `max_chunks` windows of `chunk_tokens` tokens, consecutive ones sharing `overlap` tokens.

    A text that fits in one window is returned whole. Text past the last window is dropped, as a
    truncation would drop it.
    """
    offsets = _offsets(tokenizer, text)
    if len(offsets) <= chunk_tokens or max_chunks <= 1:
        return [text if len(offsets) <= chunk_tokens else text[: offsets[chunk_tokens - 1][1]]]
    step = max(1, chunk_tokens - min(overlap, chunk_tokens - 1))
    chunks: list[str] = []
    start = 0
    while start < len(offsets) and len(chunks) < max_chunks:
        end = min(start + chunk_tokens, len(offsets))
        chunks.append(text[offsets[start][0] : offsets[end - 1][1]])
        if end == len(offsets):
            break
        start += step
    return chunks


def token_windows(
    tokenizer: Any, text: str, window_tokens: int, overlap: int, max_tokens: int
) -> list[tuple[int, int]]:
    """Character ranges of windows of `window_tokens` tokens over the first `max_tokens` tokens of
    `text`, consecutive ones sharing `overlap`; the last window ends at the last token read. The
    ranges come from the tokenizer's offsets, so they are code-point offsets into `text` itself."""
    offsets = _offsets(tokenizer, text)[: max(1, max_tokens)]
    if not offsets:
        return []
    size = max(1, window_tokens)
    step = max(1, size - min(overlap, size - 1))
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, len(offsets))
        out.append((offsets[start][0], offsets[end - 1][1]))
        if end == len(offsets):
            return out
        start += step
