"""Client input made safe before any work: lone UTF-16 surrogates, document objects the echo cannot
carry, and bounds on every input that multiplies work (chunks, instruction, characters to tokenize).

Everything here is cheap (a regex over the body, len() of strings): it runs before tokenization."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from rerankd.errors import InvalidRequest
from rerankd.spans import DEFAULT_SPAN_TOKENS, SpanRequest, bound_windows
from rerankd.spans import validate as validate_spans

MAX_CHUNKS_PER_DOC = 64
# Span windows (and merged spans) one request may have scored: each is a pair the size of a short
# document, so this bounds a spans request to about the work of 2048 short documents.
MAX_SPAN_PAIRS = 2048
# Characters per token assumed when the model does not say (ModelInfo.max_token_chars, its tokenizer's
# longest vocabulary entry: 128 for Qwen3's runs of spaces and dashes).
CHARS_PER_TOKEN_CAP = 32
DEFAULT_MAX_INSTRUCTION_CHARS = 4_000

# One pass over the JSON text: escaped backslashes are skipped as pairs, so `\\ud800` (a literal
# backslash then "ud800") is left alone; a valid surrogate pair is kept; a lone half becomes U+FFFD.
_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)


def _fix(match: re.Match[bytes]) -> bytes:
    text = match.group(0)
    return text if len(text) != 6 else b"\\ufffd"  # 2: an escaped backslash; 12: a valid pair


def replace_lone_surrogates(body: bytes) -> bytes:
    """The JSON body with every lone surrogate escape replaced by U+FFFD: the tokenizer (and UTF-8
    encoding of the answer) cannot take them, and a client's stray half-character is not worth a 400."""
    if b"\\u" not in body and b"\\U" not in body:
        return body
    return _ESCAPES.sub(_fix, body)


def check_document_objects(items: Sequence[str | dict[str, Any]]) -> None:
    """A document object's `text`, when present, must be a string: it is ranked on and echoed back."""
    for i, item in enumerate(items):
        if isinstance(item, dict) and "text" in item and not isinstance(item["text"], str):
            raise InvalidRequest(f"documents[{i}].text must be a string, got {type(item['text']).__name__}")


@dataclass(frozen=True)
class Bounds:
    """The work a request may ask for, checked on the raw request before any tokenization."""

    max_length: int  # the model's tokens
    max_instruction_chars: int = DEFAULT_MAX_INSTRUCTION_CHARS
    max_chunks_per_doc: int = MAX_CHUNKS_PER_DOC
    max_span_pairs: int = MAX_SPAN_PAIRS

    def at_length(self, max_length: int) -> Bounds:
        """These bounds for a model whose real length is `max_length` (known once it is loaded; never
        more than configured)."""
        max_length = min(max_length, self.max_length)
        return self if max_length == self.max_length else replace(self, max_length=max_length)

    def check(self, *, instruction: str | None, max_chunks_per_doc: int | None) -> None:
        if max_chunks_per_doc is not None and max_chunks_per_doc > self.max_chunks_per_doc:
            raise InvalidRequest(
                f"max_chunks_per_doc is {max_chunks_per_doc}, more than this server's limit of "
                f"{self.max_chunks_per_doc}; send fewer, or split the document yourself"
            )
        if instruction is not None and len(instruction) > self.max_instruction_chars:
            raise InvalidRequest(
                f"the instruction is {len(instruction)} characters, more than this server's limit of "
                f"{self.max_instruction_chars}; shorten the instruction"
            )

    def check_spans(
        self,
        texts: Sequence[str],
        spans: SpanRequest,
        *,
        max_tokens_per_doc: int | None,
        max_chunks_per_doc: int | None,
        max_queue: int | None = None,
    ) -> None:
        """Refuse a spans request whose windows could exceed `max_span_pairs`, counted without a
        tokenizer (`rerankd.spans.bound_windows`: no more tokens than UTF-8 bytes, nor than the
        tokens the scores read) over the `top_n` largest documents, plus the merged spans' rescoring."""
        validate_spans(spans.max_spans, spans.span_tokens, self.max_length)
        size = min(self.max_length, spans.span_tokens or DEFAULT_SPAN_TOKENS)
        region = min(self.max_length, max_tokens_per_doc or self.max_length) * max(1, max_chunks_per_doc or 1)
        bounds = sorted((bound_windows(t, size, region) for t in texts), reverse=True)
        kept = bounds[: spans.top_n] if spans.top_n is not None else bounds
        pairs = sum(kept) + len(kept) * (spans.max_spans // 2)
        if max_queue is not None and pairs > max_queue:
            # The windows go through the queue in one round: past its size they would be refused only
            # after the documents were scored.
            raise InvalidRequest(
                f"return_spans with span_tokens={size} could score up to {pairs} windows for these "
                f"documents, more than this server's queue of {max_queue} (--max-queue); send a larger "
                "span_tokens, a smaller top_n, or fewer or shorter documents"
            )
        if pairs > self.max_span_pairs:
            raise InvalidRequest(
                f"return_spans with span_tokens={size} could score up to {pairs} windows for these "
                f"documents, more than this server's limit of {self.max_span_pairs}; send a larger "
                "span_tokens, a smaller top_n, or fewer or shorter documents"
            )

    def clip(
        self,
        texts: Sequence[str],
        *,
        truncate: bool,
        max_tokens_per_doc: int | None = None,
        max_chunks_per_doc: int | None = None,
        token_chars: int | None = None,
    ) -> list[str]:
        """Texts cut to the characters the model could ever read of them, so a 100k-token document
        truncated to 512 tokens costs a 512-token tokenization. A token covers at most `token_chars`
        characters (the model's `max_token_chars`), so (tokens kept) x token_chars characters hold every
        token the model reads. Not when truncate is false: then the full length is needed to refuse it."""
        if not truncate:
            return list(texts)
        tokens = min(self.max_length, max_tokens_per_doc or self.max_length)
        per_token = max(CHARS_PER_TOKEN_CAP, token_chars or 0)
        keep = tokens * max(1, max_chunks_per_doc or 1) * per_token
        return [t if len(t) <= keep else t[:keep] for t in texts]
