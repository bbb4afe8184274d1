"""Yes/no causal-LM rerankers (Qwen3-Reranker): score = P("yes") at the answer slot.

P(yes) = softmax([l_no, l_yes])[1] = sigmoid(l_yes - l_no), so only the last position's hidden state and
two rows of the LM head are needed, never the vocabulary-wide logits. Both rows are applied in fp32,
whatever dtype the model runs in.

Prefix reuse: every pair of one query starts with the same tokens (system prompt, instruction, query).
`forward` groups the pairs of a batch by their longest common *token-id* prefix (never a string prefix,
so a BPE merge across the query/document boundary can only shorten what is shared), runs each group's
prefix once, and then runs only the suffixes, right-padded, attending to their group's keys/values.
The prefix keys/values are prepended per layer, one layer at a time (no cache of the whole batch is
kept), and the pairs of several queries share one suffix pass.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch

from rerankd.errors import InvalidRequest, UnsupportedModelError
from rerankd.models.base import EncodedPair, ModelInfo
from rerankd.templates import QWEN3_RERANKER, YesNoTemplate

log = logging.getLogger(__name__)

# A group's prefix pass costs a little beyond its tokens (one more row, one more mask); below this many
# saved tokens sharing is not worth it.
GROUP_OVERHEAD_TOKENS = 4
# A batch's fixed cost in tokens (smaller matrix multiplies run further from peak, per-call overhead):
# the planner takes a few padded tokens over one more batch.
BATCH_OVERHEAD_TOKENS = 64
PLAN_EXACT_LIMIT = 512
# On CPU, one forward pass of ~4k tokens already runs the matrix multiplies near peak; more only adds
# activation memory (about 60 KiB per token in fp32 for Qwen3-0.6B).
CPU_FORWARD_TOKENS = 4096


def single_token_id(tokenizer: Any, token: str) -> int | None:
    """The id of `token` if the vocabulary has it as one token, else None."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id:
        return None
    return int(tid)


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_groups(seqs: Sequence[Sequence[int]]) -> list[tuple[int, list[int]]]:
    """Partition sequences into groups that share a token prefix: [(prefix_length, [indices])].

    Sequences sorted lexicographically put every shared prefix in one contiguous run, and the common
    prefix of a run is the minimum of its neighbours' common prefixes (an LCP array). Each run either
    stays one group sharing that minimum, or splits where the minimum is reached into runs that share
    more; the choice that computes fewer tokens wins (exact, by recursion on the LCP array). A shared
    prefix always leaves at least one token to each member, so every last position lies in the suffix.
    Indices with prefix_length 0 share nothing.
    """
    n = len(seqs)
    if n == 0:
        return []
    order = sorted(range(n), key=lambda i: list(seqs[i]))
    adj = [_lcp(seqs[order[k]], seqs[order[k + 1]]) for k in range(n - 1)]
    lens = [len(seqs[i]) for i in order]

    def best(lo: int, hi: int) -> tuple[int, list[tuple[int, list[int]]]]:
        # Cost in tokens computed, groups, for order[lo:hi].
        if hi - lo == 1:
            return lens[lo], [(0, [order[lo]])]
        g_raw = min(adj[lo : hi - 1])
        g = min(g_raw, min(lens[lo:hi]) - 1)
        total = sum(lens[lo:hi])
        whole = total - (hi - lo - 1) * g + GROUP_OVERHEAD_TOKENS if g > 0 else total
        split_groups: list[tuple[int, list[int]]] = []
        split_cost, start = 0, lo
        for k in range(lo, hi - 1):
            if adj[k] == g_raw:
                c, gs = best(start, k + 1)
                split_cost, split_groups, start = split_cost + c, split_groups + gs, k + 1
        c, gs = best(start, hi)
        split_cost, split_groups = split_cost + c, split_groups + gs
        if start == lo:  # no split point (cannot happen: the minimum is always reached somewhere)
            split_cost = total
            split_groups = [(0, [order[i]]) for i in range(lo, hi)]
        if g > 0 and whole < split_cost:
            return whole, [(g, [order[i] for i in range(lo, hi)])]
        return split_cost, split_groups

    return best(0, n)[1]


class _PrefixKV:
    """Duck-typed stand-in for a transformers Cache. Recording: keeps each layer's keys/values of the
    prefix pass. Prepending: returns [prefix of this row's group ; the suffix's own] for each layer,
    storing nothing, so only one layer's concatenation is alive at a time."""

    is_compileable = False

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.rows: torch.Tensor | None = None  # group index of each suffix row, or None (one group)
        self.recording = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.recording:
            self.keys.append(key_states)
            self.values.append(value_states)
            return key_states, value_states
        k, v = self.keys[layer_idx], self.values[layer_idx]
        b = key_states.shape[0]
        if self.rows is None:
            k, v = k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)
        else:
            k, v = k.index_select(0, self.rows), v.index_select(0, self.rows)
        return torch.cat([k, key_states], dim=2), torch.cat([v, value_states], dim=2)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0 if self.recording or not self.keys else int(self.keys[0].shape[2])


class YesNoScorer:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        info: ModelInfo,
        template: YesNoTemplate = QWEN3_RERANKER,
        share_prefix: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.template = template
        yes = single_token_id(tokenizer, template.yes_token)
        no = single_token_id(tokenizer, template.no_token)
        if yes is None or no is None:
            raise UnsupportedModelError(
                f"{info.name}: the tokenizer has no single token for {template.yes_token!r} and "
                f"{template.no_token!r}, so it is not a yes/no reranker"
            )
        self.yes_id, self.no_id = yes, no
        self.prefix_ids = self._ids(template.prefix)
        self.suffix_ids = self._ids(template.suffix)
        if info.max_length - len(self.prefix_ids) - len(self.suffix_ids) < 1:
            raise InvalidRequest(
                f"max_length={info.max_length} leaves no room for text: the template alone takes "
                f"{len(self.prefix_ids) + len(self.suffix_ids)} tokens"
            )
        head = model.get_output_embeddings()
        rows = head.weight.detach()[[yes, no]].float()
        bias = getattr(head, "bias", None)
        self._head = rows  # [2, hidden] fp32: "yes" row then "no" row
        self._head_bias = bias.detach()[[yes, no]].float() if bias is not None else None
        self._backbone = model.base_model
        self.pad_id = int(
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
        )
        self.share_prefix = share_prefix and self._supports_prefix_reuse()
        # Tokens per forward pass on CPU, whatever batch the caller hands over (None: no cap).
        self.max_forward_tokens: int | None = CPU_FORWARD_TOKENS if self._head.device.type == "cpu" else None

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def _supports_prefix_reuse(self) -> bool:
        """Prefix reuse feeds the backbone a cache object and a prepared 4-D mask per layer type; only
        full-attention decoders with SDPA or eager attention take both."""
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

    def encode(self, query: str, document: str, *, instruction: str | None = None) -> EncodedPair:
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
        return EncodedPair(prefix + body[:room] + suffix, truncated=len(body) > room)

    def plan(
        self, encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
    ) -> list[list[int]]:
        """Batches for `score_encoded`, fewest tokens computed under the budget.

        Pairs are sorted by the length left once their group's shared prefix is paid; the sorted run is
        then cut into batches by dynamic programming over the cost of each batch: its rows padded to
        its longest suffix, plus the prefix of every group it holds (a prefix runs once per batch),
        plus a fixed cost per batch. A batch's cost must fit `max_batch_tokens`, which bounds memory.
        """
        from rerankd.models.base import plan_batches

        if not self.share_prefix or len(encoded) < 2:
            return plan_batches([len(e) for e in encoded], max_batch_tokens, max_batch_size)
        groups = prefix_groups([e.input_ids for e in encoded])
        group_of = [0] * len(encoded)
        shared = [0] * len(encoded)
        for gi, (g, members) in enumerate(groups):
            for i in members:
                group_of[i], shared[i] = gi, g
        order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i]) - shared[i]))
        n = len(order)
        if n > PLAN_EXACT_LIMIT:  # quadratic below; past this, chunks of the sorted run
            out: list[list[int]] = []
            for c in range(0, n, PLAN_EXACT_LIMIT):
                chunk = order[c : c + PLAN_EXACT_LIMIT]
                sub = self.plan([encoded[i] for i in chunk], max_batch_tokens, max_batch_size)
                out += [[chunk[k] for k in b] for b in sub]
            return out
        suffix = [len(encoded[i]) - shared[i] for i in order]
        inf = float("inf")
        best = [0.0] + [inf] * n
        cut = [0] * (n + 1)
        for i in range(n):  # a batch order[i:j]; order[i] has its longest suffix
            if best[i] == inf:
                continue
            seen: set[int] = set()
            prefixes = 0
            for j in range(i + 1, min(n, i + max_batch_size) + 1):
                gi = group_of[order[j - 1]]
                if gi not in seen:
                    seen.add(gi)
                    prefixes += groups[gi][0]
                tokens = suffix[i] * (j - i) + prefixes
                if tokens > max_batch_tokens and j - i > 1:
                    break
                cost = best[i] + tokens + BATCH_OVERHEAD_TOKENS
                if cost < best[j]:
                    best[j], cut[j] = cost, i
        batches: list[list[int]] = []
        j = n
        while j > 0:
            batches.append(order[cut[j] : j])
            j = cut[j]
        return batches[::-1]

    def _mask(self, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B, Q, K] booleans → the 4-D mask the attention implementation takes."""
        mask = allowed[:, None, :, :]
        if getattr(self._backbone.config, "_attn_implementation", "sdpa") == "sdpa":
            return mask
        zero = torch.zeros((), dtype=dtype, device=mask.device)
        return torch.where(mask, zero, torch.finfo(dtype).min)

    def _run(
        self, ids: torch.Tensor, allowed: torch.Tensor, positions: torch.Tensor, cache: _PrefixKV
    ) -> Any:
        mask = self._mask(allowed, self._head_dtype())
        kwargs = {self._cache_kwarg: cache}
        return self._backbone(
            input_ids=ids,
            attention_mask={"full_attention": mask},
            position_ids=positions,
            use_cache=False,
            **kwargs,
        ).last_hidden_state

    def _head_dtype(self) -> torch.dtype:
        emb = self._backbone.get_input_embeddings().weight
        return emb.dtype if emb.dtype.is_floating_point else torch.float32

    @torch.inference_mode()
    def forward(self, batch: Sequence[EncodedPair]) -> list[float]:
        if not batch:
            return []
        cap = self.max_forward_tokens
        if cap is not None and len(batch) > 1 and sum(len(e) for e in batch) > cap:
            # Bigger batches than this only cost memory on CPU (the matrix multiplies are already
            # near peak), so a large batch from any caller runs as planned sub-batches.
            out = [0.0] * len(batch)
            for sub in self.plan(batch, cap, len(batch)):
                for i, value in zip(sub, self._forward_batch([batch[i] for i in sub]), strict=True):
                    out[i] = value
            return out
        return self._forward_batch(batch)

    def _forward_batch(self, batch: Sequence[EncodedPair]) -> list[float]:
        groups = prefix_groups([e.input_ids for e in batch]) if self.share_prefix and len(batch) > 1 else []
        shared = [g for g in groups if g[0] > 0]
        hidden = self._forward_shared(batch, shared) if shared else self._forward_plain(batch)
        h = hidden.float()
        logits = h @ self._head.T
        if self._head_bias is not None:
            logits = logits + self._head_bias
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

    def _forward_shared(
        self, batch: Sequence[EncodedPair], shared: list[tuple[int, list[int]]]
    ) -> torch.Tensor:
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
        cache = _PrefixKV()
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
