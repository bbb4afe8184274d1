"""Prompt formats per model family: the Qwen3-Reranker template, its default instruction, and the
recognition of input a client has already templated (so it is never wrapped twice).

A prompt is kept as three strings (prefix, body, suffix) because the scorer tokenizes them separately
and truncates only the body: the suffix ends in the answer slot and must always survive.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_BODY = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"

# Markers of a chat-formatted prompt. Input that starts with the first was templated by the caller.
_CHAT_START = "<|im_start|>"
_USER_TURN = "<|im_start|>user\n"
_ASSISTANT_TURN = "<|im_end|>\n<|im_start|>assistant"


@dataclass(frozen=True)
class Prompt:
    """A prompt in three parts; only `body` may be truncated."""

    prefix: str
    body: str
    suffix: str
    templated_by_caller: bool = False


@dataclass(frozen=True)
class YesNoTemplate:
    """A causal-LM reranker prompt whose answer is the next token, "yes" or "no"."""

    prefix: str = QWEN3_PREFIX
    suffix: str = QWEN3_SUFFIX
    body_format: str = QWEN3_BODY
    default_instruction: str = DEFAULT_INSTRUCTION
    yes_token: str = "yes"
    no_token: str = "no"

    def build(self, query: str, document: str, instruction: str | None = None) -> Prompt:
        """The prompt for one pair; input the caller already templated is split, not wrapped again."""
        pre = split_templated(query, document, default_suffix=self.suffix)
        if pre is not None:
            return pre
        body = self.body_format.format(
            instruction=self.default_instruction if instruction is None else instruction,
            query=query,
            document=document,
        )
        return Prompt(self.prefix, body, self.suffix)


QWEN3_RERANKER = YesNoTemplate()


def is_templated(text: str) -> bool:
    """True when `text` is already a chat-formatted prompt (starts with `<|im_start|>`)."""
    return text.lstrip().startswith(_CHAT_START)


def split_templated(query: str, document: str, *, default_suffix: str = QWEN3_SUFFIX) -> Prompt | None:
    """Recognise input templated by the caller and split it into prefix/body/suffix, or return None.

    Clients of providers without server-side templating (vLLM's documented recipe, for one) send
    query = prefix + "<Instruct>: ...\\n<Query>: ...\\n" and document = "<Document>: ..." + suffix. Their
    concatenation is then the reference prompt itself; splitting it back at the user turn and at the
    assistant turn reproduces the reference token sequence exactly, and keeps the answer slot safe from
    truncation. A templated prompt that lacks the assistant turn gets the default suffix, so the last
    token is still the answer slot.
    """
    full = query + document
    if not is_templated(full):
        return None
    user = full.find(_USER_TURN)
    start = user + len(_USER_TURN) if user >= 0 else 0
    end = full.rfind(_ASSISTANT_TURN)
    if end < start:
        return Prompt(full[:start], full[start:], default_suffix, templated_by_caller=True)
    return Prompt(full[:start], full[start:end], full[end:], templated_by_caller=True)
