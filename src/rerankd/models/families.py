"""LLM reranker formats as data: how each family lays out its prompt, truncates, reads its score, and how
a model is recognised as one of them (from config and tokenizer, never from the name alone).

Two layouts cover the families served today:
- "joint" (Qwen3-Reranker): prefix, then one body string (instruction + query + document) tokenized as
  one text, then the suffix; `max_length` counts the whole input and only the body's tail is cut.
- "pair" (FlagEmbedding's FlagLLMReranker, mixedbread's mxbai-rerank v2): the query piece and the
  document piece are tokenized separately, each under its own budget (query: 3/4 of `max_length`,
  document: `max_length`), joined by a separator and cut once more from the document's end
  (transformers' `truncation="only_second"`); fixed head and tail token runs go around them. Here
  `max_length` is the query + document budget, not the whole input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rerankd.errors import UnsupportedModelError
from rerankd.templates import QWEN3_RERANKER, YesNoTemplate

GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
    "providing a prediction of either 'Yes' or 'No'."
)
# mixedbread-ai/mxbai-rerank, mxbai_rerank/mxbai_rerank_v2.py (MxbaiRerankV2 class attributes).
MXBAI_TASK_PROMPT = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your "
    "binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)
MXBAI_CHAT_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
)
MXBAI_CHAT_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"


@dataclass(frozen=True)
class LLMFamily:
    """One causal-LM reranker format. `score`: "yes_minus_no" gives log-odds l_yes - l_no (probability
    sigmoid of it); "yes_logit" gives l_yes itself (FlagEmbedding: sigmoid(l_yes) when normalized)."""

    name: str
    title: str
    layout: Literal["joint", "pair"]
    score: Literal["yes_minus_no", "yes_logit"]
    yes_token: str
    no_token: str | None
    default_instruction: str | None
    default_max_length: int
    max_length_counts: Literal["whole input", "query + document"]
    # Recognition: the config's model_type is one of these and the tokenizer has each token as one id.
    model_types: tuple[str, ...]
    needs_tokens: tuple[str, ...]
    # "joint" layout
    template: YesNoTemplate | None = None
    # "pair" layout: head pieces (tokenized one by one), query/document formats, separator, tail pieces.
    head: tuple[str, ...] = ()
    add_bos: bool = False  # FlagEmbedding: bos first when the tokenizer has one distinct from pad
    query_format: str = "{query}"
    document_format: str = "{document}"
    instruction_place: Literal["body", "query", "tail"] = "body"
    instruction_format: str = "{instruction}"  # "query": prepended to the query piece with `sep`
    sep: str = "\n"
    tail: tuple[str, ...] = ()  # "{instruction}" marks the instruction's piece
    # FlagEmbedding caps query + document at max_length + the tail's length; mxbai at max_length.
    pair_cap_adds_tail: bool = False
    # mxbai: max_length shrinks so the whole input fits the tokenizer's model_max_length.
    clamp_to_tokenizer_max: bool = False

    def recognises(self, config: Any, tokenizer: Any) -> bool:
        if getattr(config, "model_type", None) not in self.model_types:
            return False
        if self.add_bos and getattr(tokenizer, "bos_token_id", None) is None:
            return False
        return all(single_token(tokenizer, t) is not None for t in self.needs_tokens)


def single_token(tokenizer: Any, token: str) -> int | None:
    """The id `token` encodes to when it is exactly one token, else None."""
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == getattr(tokenizer, "unk_token_id", None):
        return None
    return int(ids[0])


QWEN3 = LLMFamily(
    name="qwen3-reranker",
    title="Qwen3-Reranker 0.6B/4B/8B and fine-tunes that keep its template",
    layout="joint",
    score="yes_minus_no",
    yes_token="yes",
    no_token="no",
    default_instruction=QWEN3_RERANKER.default_instruction,
    default_max_length=8192,
    max_length_counts="whole input",
    model_types=("qwen3",),
    needs_tokens=("yes", "no", "<|im_start|>"),
    template=QWEN3_RERANKER,
)

# FlagEmbedding/inference/reranker/decoder_only/base.py, BaseLLMReranker.compute_score_single_gpu:
# [bos] + tok("A: " + q)[:3L/4] , tok("\n") + tok("B: " + p)[:L], cut only_second to L + len(tail),
# then + tok("\n") + tok(prompt); score = the "Yes" logit at the last position.
BGE_GEMMA = LLMFamily(
    name="bge-reranker-v2-gemma",
    title="BAAI bge-reranker-v2-gemma (FlagEmbedding FlagLLMReranker)",
    layout="pair",
    score="yes_logit",
    yes_token="Yes",
    no_token=None,
    default_instruction=GEMMA_PROMPT,
    default_max_length=512,
    max_length_counts="query + document",
    model_types=("gemma", "gemma2"),
    needs_tokens=("Yes", "\n"),
    add_bos=True,
    query_format="A: {query}",
    document_format="B: {document}",
    instruction_place="tail",
    tail=("\n", "{instruction}"),
    pair_cap_adds_tail=True,
)

# mixedbread-ai/mxbai-rerank, MxbaiRerankV2.prepare_inputs: prefix + [ (instruction + "\n" +) "query: q"
# ][:3L/4] , "\n" + tok("document: d")[:min(model_max - q - fixed, L)], cut only_second to L, then +
# "\n" + task prompt + chat suffix; score = l("1") - l("0") at the last position (sigmoid > 0.5 is
# "relevant"). No instruction by default. Read from the package's source; its tokenizer's
# model_max_length is taken as the model's limit, as the package does.
MXBAI_V2 = LLMFamily(
    name="mxbai-rerank-v2",
    title="mixedbread mxbai-rerank-base-v2 / mxbai-rerank-large-v2 (Qwen2)",
    layout="pair",
    score="yes_minus_no",
    yes_token="1",
    no_token="0",
    default_instruction=None,
    default_max_length=8192,
    max_length_counts="query + document",
    model_types=("qwen2",),
    needs_tokens=("0", "1", "<|im_start|>", "\n"),
    head=(MXBAI_CHAT_PREFIX,),
    query_format="query: {query}",
    document_format="document: {document}",
    instruction_place="query",
    instruction_format="instruction: {instruction}",
    tail=("\n", MXBAI_TASK_PROMPT, MXBAI_CHAT_SUFFIX),
    clamp_to_tokenizer_max=True,
)

FAMILIES: dict[str, LLMFamily] = {f.name: f for f in (QWEN3, BGE_GEMMA, MXBAI_V2)}
ALIASES = {"qwen3": QWEN3.name, "bge-gemma": BGE_GEMMA.name, "mxbai-v2": MXBAI_V2.name}


def family_named(name: str) -> LLMFamily:
    """The family called `name` (or an alias); an unknown name is refused with the known ones."""
    key = ALIASES.get(name, name)
    if key not in FAMILIES:
        raise UnsupportedModelError(f"unknown template {name!r}; known templates: {', '.join(FAMILIES)}")
    return FAMILIES[key]


def recognise(config: Any, tokenizer: Any) -> LLMFamily | None:
    """The family whose architecture and tokens this model has; None when none fits."""
    for family in FAMILIES.values():
        if family.recognises(config, tokenizer):
            return family
    return None


UNBOUNDED = 10**9  # tokenizers without a real limit report model_max_length ~1e30


class PairEncoder:
    """A "pair" family's tokenization, piece by piece as its own code does it (see the module doc)."""

    def __init__(self, family: LLMFamily, tokenizer: Any, max_length: int) -> None:
        self.family = family
        self.tokenizer = tokenizer
        bos, pad = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "pad_token_id", None)
        self.bos = [int(bos)] if family.add_bos and bos is not None and bos != pad else []
        self.head = [t for piece in family.head for t in self._ids(piece)]
        self.sep = self._ids(family.sep)
        self.default_tail = self.tail(None)
        self.model_max = int(getattr(tokenizer, "model_max_length", UNBOUNDED) or UNBOUNDED)
        self.max_length = max_length
        fixed = len(self.head) + len(self.default_tail)
        if (
            family.clamp_to_tokenizer_max
            and self.model_max < UNBOUNDED
            and max_length + fixed > self.model_max
        ):
            self.max_length = self.model_max - fixed

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def _instruction(self, instruction: str | None) -> str | None:
        return self.family.default_instruction if instruction is None else instruction

    def tail(self, instruction: str | None) -> list[int]:
        instr = self._instruction(instruction) or ""
        return [t for p in self.family.tail for t in self._ids(instr if p == "{instruction}" else p)]

    def _query(self, query: str, instruction: str | None) -> tuple[list[int], bool]:
        f = self.family
        text = f.query_format.format(query=query)
        instr = self._instruction(instruction)
        if f.instruction_place == "query" and instr:
            text = f.instruction_format.format(instruction=instr) + f.sep + text
        ids = self._ids(text)
        keep = self.max_length * 3 // 4
        return self.bos + ids[:keep], len(ids) > keep

    def _caps(self, first: list[int], tail: list[int]) -> tuple[int, int]:
        """(document cap, query + document cap) for this query piece."""
        doc_cap = self.max_length
        if self.family.clamp_to_tokenizer_max and self.model_max < UNBOUNDED:
            fixed = len(self.head) + len(self.default_tail)
            doc_cap = min(self.model_max - len(first) - fixed, self.max_length)
        pair_cap = self.max_length + (len(tail) if self.family.pair_cap_adds_tail else 0)
        return max(doc_cap, 0), pair_cap

    def encode(self, query: str, document: str, instruction: str | None) -> tuple[list[int], bool]:
        """The input ids and whether anything was cut. The head and tail are never cut."""
        first, cut = self._query(query, instruction)
        tail = self.tail(instruction)
        doc_cap, pair_cap = self._caps(first, tail)
        doc = self._ids(self.family.document_format.format(document=document))
        cut = cut or len(doc) > doc_cap
        second = self.sep + doc[:doc_cap]
        over = len(first) + len(second) - pair_cap
        # transformers' only_second: cut the second text's end; it cuts nothing when that is not enough.
        if 0 < over < len(second):
            second, cut = second[: len(second) - over], True
        return self.head + first + second + tail, cut

    def room(self, query: str, instruction: str | None) -> int:
        """Tokens left for the document text once the query piece is in."""
        first, _ = self._query(query, instruction)
        doc_cap, pair_cap = self._caps(first, self.tail(instruction))
        label = len(self._ids(self.family.document_format.format(document="")))
        return min(doc_cap, pair_cap - len(first) - len(self.sep)) - label
