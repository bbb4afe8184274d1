"""Batch-invariant scoring: a pair's score is bitwise the same alone and inside any batch.

What made a score depend on its batch (benchmarks/batch_invariance.py measures it; README "Batch-invariant
scores" has the figures):
- Attention. SDPA's CPU kernel splits the keys into blocks whose size depends on the key length, takes a
  vectorised exp over whole 16-lane chunks and a scalar one over the tail, and rescales between blocks:
  the same row over the same keys rounds differently once padding (a longer batch neighbour) or a shared
  prefix changes the key length or the key layout.
- Prefix sharing. The shared prefix of a group depends on the batch (the longest common token prefix of
  whichever pairs are in it), so where a pair's computation is split did too.
- Small fp32 GEMMs (MKL takes other kernels for M < 12 rows not a multiple of 4): the yes/no projection of
  a one-pair batch rounded differently from the same row in a batch.

What this mode does instead:
- Attention is computed per row at the row's own length, one SDPA call over exactly its own keys (its
  group's prefix, then its own tokens), so a row's attention never sees padding or another row; the
  linear layers still run on the whole padded batch (their kernels here give every row the same bits
  whatever the number of rows, which tests/integration/test_batch_invariance.py checks end to end).
- Every pair is split at a point fixed by the pair alone: where its document starts (`query_tokens`, the
  tokens the template, instruction and query fix). Pairs of one query group on exactly that prefix; a pair
  alone goes through the same two passes. Sharing across different queries (the template's system
  prompt alone) is given up.
- The yes/no rows are applied by an elementwise product and a per-row sum, not a GEMM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch.nn import functional as F

from rerankd.models.base import EncodedPair, PlannedBatch, PrefixGroup
from rerankd.models.prefix import PrefixKV, _cut, _lcp

ATTENTION = "rerankd_invariant"
ROWS_KWARG = "rerankd_rows"
PREFIX_KWARG = "rerankd_prefix"


def split_point(ids: Sequence[int], query_part: Sequence[int]) -> int:
    """Where a pair is split: the tokens it shares with its query's empty-document encoding (a BPE merge
    across the boundary only shortens it), keeping at least the last token on the document's side."""
    return min(_lcp(ids, query_part), len(ids) - 1)


class Row(NamedTuple):
    """One batch row of a batch-invariant pass: its own tokens, how many prefix keys it attends to first
    (its group's, from `SplitKV`), which group, and the mask for that (None: plain causal)."""

    tokens: int
    prefix: int
    group: int
    mask: torch.Tensor | None


def rows_for(tokens: Sequence[int], prefix: Sequence[int], group: Sequence[int], device: Any) -> list[Row]:
    masks: dict[tuple[int, int], torch.Tensor] = {}
    out = []
    for n, s, g in zip(tokens, prefix, group, strict=True):
        mask = None
        if s:
            if (n, s) not in masks:  # bottom-right causal: own token i sees the whole prefix and own 0..i
                masks[n, s] = (
                    torch.arange(s + n, device=device)[None, :] <= s + torch.arange(n, device=device)[:, None]
                )
            mask = masks[n, s]
        out.append(Row(n, s, g, mask))
    return out


class SplitKV(PrefixKV):
    """A PrefixKV that records the prefix pass's keys/values the same way but, afterwards, hands a
    layer's keys back untouched: the attention reads each row's prefix from here itself."""

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.recording:
            return super().update(key_states, value_states, layer_idx)
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


def invariant_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The transformers attention interface (query [B, H, Q, D], keys [B, Hkv, K, D]). With `rerankd_rows`
    (a `Row` per batch row) each row attends, in an SDPA call of its own, over exactly its group's prefix
    keys (`rerankd_prefix`, a SplitKV) and its own keys, causally; without it, plain SDPA."""
    rows: list[Row] | None = kwargs.pop(ROWS_KWARG, None)
    prefix: SplitKV | None = kwargs.pop(PREFIX_KWARG, None)
    if rows is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    b, heads, q_len, dim = query.shape
    gqa = heads != key.shape[1]
    out = query.new_zeros((b, q_len, heads, dim))
    for i, (n, start, group, mask) in enumerate(rows):
        q = query[i : i + 1, :, :n].contiguous()
        k, v = key[i : i + 1, :, :n], value[i : i + 1, :, :n]
        if start and prefix is not None:
            pk, pv = prefix.keys[module.layer_idx], prefix.values[module.layer_idx]
            k = torch.cat([pk[group : group + 1, :, :start], k], dim=2)
            v = torch.cat([pv[group : group + 1, :, :start], v], dim=2)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling, enable_gqa=gqa)
        else:
            k, v = k.contiguous(), v.contiguous()
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, enable_gqa=gqa)
        out[i, :n] = o[0].transpose(0, 1)
    return out, None


_registered = False


def register() -> str:
    """Make the attention function known to transformers (once); its name for `_attn_implementation`."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(ATTENTION, invariant_attention)
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # only for callers that pass no 4-D mask
        _registered = True
    return ATTENTION


def groups_at_splits(pairs: Sequence[EncodedPair]) -> list[PrefixGroup]:
    """Pairs grouped on their whole query part (`query_tokens`): [(length, members)]; length 0 for a pair
    that has none (it runs whole)."""
    by_key: dict[tuple[int, ...], list[int]] = {}
    out: list[PrefixGroup] = []
    for i, p in enumerate(pairs):
        if 0 < p.query_tokens < len(p):
            by_key.setdefault(tuple(p.input_ids[: p.query_tokens]), []).append(i)
        else:
            out.append(PrefixGroup(0, [i]))
    return [PrefixGroup(len(k), m) for k, m in by_key.items()] + out


def plan_at_splits(
    encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
) -> list[PlannedBatch]:
    """`plan_shared`'s batch cutting over `groups_at_splits`: a batch's groups are the round's groups
    restricted to it, never regrouped, so every pair is split where it would be alone."""
    groups = groups_at_splits(encoded)
    group_of = [0] * len(encoded)
    shared = [0] * len(encoded)
    for gi, (g, members) in enumerate(groups):
        for i in members:
            group_of[i], shared[i] = gi, g
    order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i]) - shared[i]))
    out: list[PlannedBatch] = []
    for batch in _cut(
        order,
        [len(encoded[i]) - shared[i] for i in order],
        group_of,
        groups,
        max_batch_tokens,
        max_batch_size,
    ):
        in_batch: dict[int, list[int]] = {}
        for pos, i in enumerate(batch):
            if shared[i] > 0:
                in_batch.setdefault(group_of[i], []).append(pos)
        pairs = tuple(encoded[i] for i in batch)
        out.append(
            PlannedBatch(
                tuple(batch), pairs, tuple(PrefixGroup(groups[gi].length, m) for gi, m in in_batch.items())
            )
        )
    return out


def project_rows(h: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """h [N, hidden] fp32 times head [R, hidden]^T, one row at a time in effect: a product and a sum
    along the hidden size, whose order does not depend on N (a GEMM's kernel does, for small N)."""
    return (h[:, None, :] * head[None, :, :]).sum(dim=-1)
