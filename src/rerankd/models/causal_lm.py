"""Yes/no causal-LM rerankers (Qwen3-Reranker, bge-reranker-v2-gemma, mxbai-rerank-v2): the score is
read at the answer slot, as the family says (`rerankd.models.families`).

P(yes) = softmax([l_no, l_yes])[1] = sigmoid(l_yes - l_no), so only the last position's hidden state and
two rows of the LM head are needed (one row for a family scored by the "Yes" logit alone), never the
vocabulary-wide logits. The rows are applied in fp32, whatever dtype the model runs in.

Prefix reuse (`rerankd.models.prefix`): `plan` groups the pairs by a shared token prefix once and hands
each batch its groups; `forward` runs each group's prefix once, then only the suffixes, right-padded,
attending to their group's keys/values. The prefix keys/values are prepended per layer, one layer at a
time (no cache of the whole batch is kept), and the pairs of several queries share one suffix pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from rerankd.errors import InvalidRequest, UnsupportedModelError
from rerankd.models.base import EncodedPair, ModelInfo, PlannedBatch, PrefixGroup, plan_by_length
from rerankd.models.documents import chunk_text, token_windows, truncate_text
from rerankd.models.families import QWEN3, LLMFamily, PairEncoder, single_token
from rerankd.models.invariant import (
    PREFIX_KWARG,
    ROWS_KWARG,
    Row,
    SplitKV,
    groups_at_splits,
    plan_at_splits,
    project_rows,
    register,
    rows_for,
    split_point,
)
from rerankd.models.prefix import PrefixKV, batch_with_prefixes, plan_shared
from rerankd.templates import YesNoTemplate

# A batch-invariant pass is at least this wide: MKL's fp32 GEMM rounds differently below 12 rows (M not a
# multiple of 4), so a short suffix alone (the template's tail and a word: ~10 tokens) would not match
# the same rows inside a batch.
MIN_PASS_WIDTH = 16
# On CPU, one forward pass of ~4k tokens already runs the matrix multiplies near peak; more only adds
# activation memory (about 60 KiB per token in fp32 for Qwen3-0.6B).
CPU_FORWARD_TOKENS = 4096


def single_token_id(tokenizer: Any, token: str) -> int | None:
    """The id of `token` if the vocabulary has it as one token, else None."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id:
        return None
    return int(tid)


class YesNoScorer:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        info: ModelInfo,
        family: LLMFamily = QWEN3,
        template: YesNoTemplate | None = None,
        share_prefix: bool = True,
        batch_invariant: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.family = family
        # A "joint" family's three strings; `template` overrides them (a custom yes/no format).
        self.template = template or family.template or YesNoTemplate()
        self.pairs = PairEncoder(family, tokenizer, info.max_length) if family.layout == "pair" else None
        answer = [family.yes_token] + ([family.no_token] if family.no_token else [])
        if template is not None:
            answer = [template.yes_token, template.no_token]
        # Qwen3 looks its tokens up in the vocabulary; the other families' code takes the first id the
        # token text encodes to; both must be one token.
        lookup = single_token_id if self.pairs is None else single_token
        ids = [lookup(tokenizer, t) for t in answer]
        if any(i is None for i in ids):
            raise UnsupportedModelError(
                f"{info.name}: the tokenizer has no single token for {' and '.join(map(repr, answer))}, "
                f"so it is not a {family.name} reranker"
            )
        self.answer_ids = [int(i) for i in ids if i is not None]
        self.yes_id = self.answer_ids[0]
        self.prefix_ids = self._ids(self.template.prefix)
        self.suffix_ids = self._ids(self.template.suffix)
        if self.pairs is None and info.max_length - len(self.prefix_ids) - len(self.suffix_ids) < 1:
            raise InvalidRequest(
                f"max_length={info.max_length} leaves no room for text: the template alone takes "
                f"{len(self.prefix_ids) + len(self.suffix_ids)} tokens"
            )
        head = model.get_output_embeddings()
        self._head = head.weight.detach()[self.answer_ids].float()  # [1 or 2, hidden] fp32: yes (, no)
        bias = getattr(head, "bias", None)
        self._head_bias = bias.detach()[self.answer_ids].float() if bias is not None else None
        # Gemma 2 caps its logits (tanh); the two rows must see the same cap as the full head.
        self._softcap = getattr(model.config, "final_logit_softcapping", None)
        self._backbone = model.base_model
        self.pad_id = int(
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
        )
        self.share_prefix = share_prefix and self._supports_prefix_reuse()
        # Scores bitwise independent of the batch (models/invariant.py): per-row attention, every pair split
        # where its document starts, alone or batched.
        self.batch_invariant = batch_invariant
        self._query_parts: dict[tuple[str, str | None], list[int]] = {}
        if batch_invariant:
            if not self._supports_prefix_reuse() or getattr(model.config, "attn_logit_softcapping", None):
                raise UnsupportedModelError(
                    f"{info.name}: batch-invariant scoring needs a full-attention decoder without attention "
                    "soft-capping (no sliding-window layers)"
                )
            self._backbone.config._attn_implementation = register()
        # Tokens per forward pass on CPU, whatever batch the caller hands over (None: no cap).
        self.max_forward_tokens: int | None = CPU_FORWARD_TOKENS if self._head.device.type == "cpu" else None

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def _supports_prefix_reuse(self) -> bool:
        """Prefix reuse feeds the backbone a stand-in cache and a prepared 4-D mask; only full-attention
        decoders (no sliding-window layers) with SDPA or eager attention take both."""
        config = getattr(self._backbone, "config", None)
        params = inspect.signature(self._backbone.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        return (
            config is not None
            and self._cache_kwarg in params
            and "position_ids" in params
            and set(getattr(config, "layer_types", None) or ["full_attention"]) == {"full_attention"}
            and not getattr(config, "use_sliding_window", False)
            and getattr(config, "_attn_implementation", "sdpa") in ("sdpa", "eager")
        )

    def encode(
        self,
        query: str,
        document: str,
        *,
        instruction: str | None = None,
        max_document_tokens: int | None = None,
    ) -> EncodedPair:
        if max_document_tokens is not None:
            document = truncate_text(self.tokenizer, document, max_document_tokens)
        if self.pairs is not None:
            ids, cut = self.pairs.encode(query, document, instruction)
            pair = EncodedPair(ids, truncated=cut)
            return self._with_split(pair, query, instruction) if self.batch_invariant and document else pair
        prompt = self.template.build(query, document, instruction)
        prefix = self.prefix_ids if prompt.prefix == self.template.prefix else self._ids(prompt.prefix)
        suffix = self.suffix_ids if prompt.suffix == self.template.suffix else self._ids(prompt.suffix)
        room = self.info.max_length - len(prefix) - len(suffix)
        if room < 1:
            raise InvalidRequest(
                f"the templated input's fixed parts take {len(prefix) + len(suffix)} tokens, more than "
                f"max_length={self.info.max_length} allows"
            )
        body = self._ids(prompt.body)
        # Cut the body's tail, never the suffix: the last token must stay the answer slot.
        cut = len(body) > room
        sent = len(prefix) + len(body) + len(suffix) if cut else None
        pair = EncodedPair(prefix + body[:room] + suffix, truncated=cut, sent_tokens=sent)
        return self._with_split(pair, query, instruction) if self.batch_invariant and document else pair

    def _with_split(self, pair: EncodedPair, query: str, instruction: str | None) -> EncodedPair:
        """`pair` with `query_tokens` set: its common prefix with the query's empty-document encoding."""
        key = (query, instruction)
        part = self._query_parts.get(key)
        if part is None:
            if len(self._query_parts) >= 1024:  # the queries of recent requests; a bound, not an LRU
                self._query_parts.clear()
            part = self._query_parts[key] = self.encode(query, "", instruction=instruction).input_ids
        return EncodedPair(
            pair.input_ids,
            pair.token_type_ids,
            pair.truncated,
            pair.sent_tokens,
            query_tokens=split_point(pair.input_ids, part),
        )

    def encode_chunks(
        self,
        query: str,
        document: str,
        *,
        instruction: str | None = None,
        chunk_tokens: int,
        overlap_tokens: int,
        max_chunks: int,
    ) -> list[EncodedPair]:
        parts = chunk_text(self.tokenizer, document, chunk_tokens, overlap_tokens, max_chunks)
        return [self.encode(query, part, instruction=instruction) for part in parts]

    def windows(
        self, document: str, *, window_tokens: int, overlap_tokens: int, max_tokens: int
    ) -> list[tuple[int, int]]:
        return token_windows(self.tokenizer, document, window_tokens, overlap_tokens, max_tokens)

    def room(self, query: str, instruction: str | None = None) -> int:
        if self.pairs is not None:
            return self.pairs.room(query, instruction)
        return self.info.max_length - len(self.encode(query, "", instruction=instruction))

    def plan(
        self, encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
    ) -> list[PlannedBatch]:
        """Batches under the budget (and, on CPU, under `max_forward_tokens`), fewest tokens computed:
        with prefix sharing, `plan_shared` groups the pairs once and each batch carries its groups."""
        if self.max_forward_tokens is not None:
            # Bigger passes than this only cost memory on CPU: the matrix multiplies are already near peak.
            max_batch_tokens = min(max_batch_tokens, self.max_forward_tokens)
        if self.batch_invariant:  # every pair split where it would be alone, whatever the batch
            return plan_at_splits(encoded, max_batch_tokens, max_batch_size)
        if not self.share_prefix or len(encoded) < 2:
            return plan_by_length(encoded, max_batch_tokens, max_batch_size)
        return plan_shared(encoded, max_batch_tokens, max_batch_size)

    def one_batch(self, pairs: Sequence[EncodedPair]) -> PlannedBatch:
        """All of `pairs` as one batch, unsplit, sharing prefixes when sharing is on (for tests that
        need one forward pass over a given set; `plan` is what bounds a batch's size)."""
        if self.batch_invariant:
            groups = tuple(g for g in groups_at_splits(pairs) if g.length > 0)
            return PlannedBatch(tuple(range(len(pairs))), tuple(pairs), groups)
        return batch_with_prefixes(pairs) if self.share_prefix else PlannedBatch.of(pairs)

    def _mask(self, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B, Q, K] booleans → the 4-D mask the attention implementation takes."""
        mask = allowed[:, None, :, :]
        if getattr(self._backbone.config, "_attn_implementation", "sdpa") == "sdpa":
            return mask
        zero = torch.zeros((), dtype=dtype, device=mask.device)
        return torch.where(mask, zero, torch.finfo(dtype).min)

    def _run(self, ids: torch.Tensor, allowed: torch.Tensor, positions: torch.Tensor, cache: PrefixKV) -> Any:
        # A prepared 4-D mask passes every model's mask builder unchanged (a dict of masks per layer
        # type is only understood by some architectures: Gemma read it as a tensor and crashed).
        mask = self._mask(allowed, self._head_dtype())
        kwargs = {self._cache_kwarg: cache}
        return self._backbone(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=False,
            **kwargs,
        ).last_hidden_state

    def _head_dtype(self) -> torch.dtype:
        emb = self._backbone.get_input_embeddings().weight
        return emb.dtype if emb.dtype.is_floating_point else torch.float32

    @torch.inference_mode()
    def forward(self, batch: PlannedBatch) -> list[float]:
        if not batch.pairs:
            return []
        pairs = batch.pairs
        if self.batch_invariant:
            h = self._forward_invariant(pairs, batch.groups).float()
            logits = project_rows(h, self._head)
        else:
            groups = batch.groups if self.share_prefix else ()
            hidden = self._forward_shared(pairs, groups) if groups else self._forward_plain(pairs)
            h = hidden.float()
            logits = h @ self._head.T
        if self._head_bias is not None:
            logits = logits + self._head_bias
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        if logits.shape[1] == 1:  # scored by the "Yes" logit alone: sigmoid(l_yes) is the probability
            return logits[:, 0].tolist()
        return (logits[:, 0] - logits[:, 1]).tolist()

    def _forward_plain(self, batch: Sequence[EncodedPair]) -> torch.Tensor:
        device = self._head.device
        width = max(len(e) for e in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            # Right padding: under a causal mask real tokens never see the pads, and each row's answer
            # slot sits at its own length - 1.
            ids[row, : len(e)] = torch.tensor(e.input_ids, dtype=torch.long)
            mask[row, : len(e)] = 1
        ids, mask = ids.to(device), mask.to(device)
        hidden = self._backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        last = torch.tensor([len(e) - 1 for e in batch], device=device)
        return hidden[torch.arange(len(batch), device=device), last]

    def _forward_shared(self, batch: Sequence[EncodedPair], shared: Sequence[PrefixGroup]) -> torch.Tensor:
        """Pairs in a group of `shared` (all with length > 0) run their prefix once; the rest run whole."""
        device = self._head.device
        n = len(batch)
        # Pass 1: every group's prefix once, right-padded to the longest prefix.
        plen = [g for g, _ in shared]
        pw = max(plen)
        ids = torch.full((len(shared), pw), self.pad_id, dtype=torch.long)
        for row, (g, members) in enumerate(shared):
            ids[row, :g] = torch.tensor(batch[members[0]].input_ids[:g], dtype=torch.long)
        causal = torch.ones((pw, pw), dtype=torch.bool).tril()
        pvalid = torch.arange(pw)[None, :] < torch.tensor(plen)[:, None]  # [G, pw]
        cache = PrefixKV()
        self._run(
            ids.to(device),
            (causal[None] & pvalid[:, None, :]).to(device),
            torch.arange(pw, device=device)[None].expand(len(shared), -1),
            cache,
        )
        # Pass 2: every pair's suffix, attending to its group's prefix (if any) and causally to itself.
        group_of = [0] * n
        start = [0] * n
        for gi, (g, members) in enumerate(shared):
            for i in members:
                group_of[i], start[i] = gi, g
        slen = [len(e) - s for e, s in zip(batch, start, strict=True)]
        sw = max(slen)
        ids = torch.full((n, sw), self.pad_id, dtype=torch.long)
        for row, e in enumerate(batch):
            ids[row, : slen[row]] = torch.tensor(e.input_ids[start[row] :], dtype=torch.long)
        start_t = torch.tensor(start)
        prefix_ok = torch.arange(pw)[None, :] < start_t[:, None]  # [N, pw]; False for unshared rows
        suffix_ok = (
            torch.ones((sw, sw), dtype=torch.bool).tril()[None]
            & (torch.arange(sw)[None, :] < torch.tensor(slen)[:, None])[:, None, :]
        )
        allowed = torch.cat([prefix_ok[:, None, :].expand(-1, sw, -1), suffix_ok], dim=2)
        positions = start_t[:, None] + torch.arange(sw)[None, :]
        cache.recording = False
        cache.rows = None if len(shared) == 1 else torch.tensor(group_of, device=device)
        hidden = self._run(ids.to(device), allowed.to(device), positions.to(device), cache)
        last = torch.tensor([s - 1 for s in slen], device=device)
        return hidden[torch.arange(n, device=device), last]

    def _forward_invariant(self, batch: Sequence[EncodedPair], shared: Sequence[PrefixGroup]) -> torch.Tensor:
        """The shared-prefix forward with per-row attention (models/invariant.py): each group's prefix in
        one pass, then every pair's own tokens attending to exactly its group's prefix and itself. The
        linear layers run on the padded batch; no row's attention ever reads a pad or another row."""
        device = self._head.device
        n = len(batch)
        group_of, start = [0] * n, [0] * n
        for gi, (g, members) in enumerate(shared):
            for i in members:
                group_of[i], start[i] = gi, g
        cache: SplitKV | None = None
        if shared:
            pw = max(MIN_PASS_WIDTH, max(g for g, _ in shared))
            ids = torch.full((len(shared), pw), self.pad_id, dtype=torch.long)
            for row, (g, members) in enumerate(shared):
                ids[row, :g] = torch.tensor(batch[members[0]].input_ids[:g], dtype=torch.long)
            cache = SplitKV()
            rows = rows_for([g for g, _ in shared], [0] * len(shared), [0] * len(shared), device)
            self._run_rows(ids, torch.arange(pw)[None].expand(len(shared), -1), rows, cache)
            cache.recording = False
        slen = [len(e) - s for e, s in zip(batch, start, strict=True)]
        sw = max(MIN_PASS_WIDTH, max(slen))
        ids = torch.full((n, sw), self.pad_id, dtype=torch.long)
        for row, e in enumerate(batch):
            ids[row, : slen[row]] = torch.tensor(e.input_ids[start[row] :], dtype=torch.long)
        positions = torch.tensor(start)[:, None] + torch.arange(sw)[None, :]
        hidden = self._run_rows(ids, positions, rows_for(slen, start, group_of, device), cache)
        last = torch.tensor([m - 1 for m in slen], device=device)
        return hidden[torch.arange(n, device=device), last]

    def _run_rows(
        self, ids: torch.Tensor, positions: torch.Tensor, rows: list[Row], cache: SplitKV | None
    ) -> Any:
        device = self._head.device
        # A prepared 4-D mask skips transformers' mask building; the attention reads `rows` instead.
        unused = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=device)
        kwargs: dict[str, Any] = {ROWS_KWARG: rows, PREFIX_KWARG: cache}
        if cache is not None:
            kwargs[self._cache_kwarg] = cache
        return self._backbone(
            input_ids=ids.to(device),
            attention_mask=unused,
            position_ids=positions.to(device),
            use_cache=False,
            **kwargs,
        ).last_hidden_state
