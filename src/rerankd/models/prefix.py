"""Shared-prefix reuse for causal LMs: grouping pairs by a common token prefix, planning batches that pay
each group's prefix once, and the stand-in cache that lets the suffixes attend to it.

Every pair of one query starts with the same tokens (system prompt, instruction, query). Pairs are
grouped by their longest common *token-id* prefix (never a string prefix, so a BPE merge across the
query/document boundary can only shorten what is shared). `plan_shared` groups a round's pairs once to
cut it into batches, and each batch once more, handing it its groups (`PlannedBatch.groups`); the
scorer's forward pass never groups: it runs each group's prefix once and then only the suffixes,
right-padded, attending to their group's keys/values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rerankd.models.base import EncodedPair, PlannedBatch, PrefixGroup

# A group's prefix pass costs a little beyond its tokens (one more row, one more mask); below this many
# saved tokens sharing is not worth it.
GROUP_OVERHEAD_TOKENS = 4
# A batch's fixed cost in tokens (smaller matrix multiplies run further from peak, per-call overhead):
# the planner takes a few padded tokens over one more batch.
BATCH_OVERHEAD_TOKENS = 64
PLAN_EXACT_LIMIT = 512  # the batch cutting is quadratic; past this many pairs, runs of this many


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_groups(seqs: Sequence[Sequence[int]]) -> list[PrefixGroup]:
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

    def best(lo: int, hi: int) -> tuple[int, list[PrefixGroup]]:
        # Cost in tokens computed, groups, for order[lo:hi].
        if hi - lo == 1:
            return lens[lo], [PrefixGroup(0, [order[lo]])]
        g_raw = min(adj[lo : hi - 1])
        g = min(g_raw, min(lens[lo:hi]) - 1)
        total = sum(lens[lo:hi])
        whole = total - (hi - lo - 1) * g + GROUP_OVERHEAD_TOKENS if g > 0 else total
        split_groups: list[PrefixGroup] = []
        split_cost, start = 0, lo
        for k in range(lo, hi - 1):
            if adj[k] == g_raw:  # the minimum is always reached somewhere, so this splits
                c, gs = best(start, k + 1)
                split_cost, split_groups, start = split_cost + c, split_groups + gs, k + 1
        c, gs = best(start, hi)
        split_cost, split_groups = split_cost + c, split_groups + gs
        if g > 0 and whole < split_cost:
            return whole, [PrefixGroup(g, [order[i] for i in range(lo, hi)])]
        return split_cost, split_groups

    return best(0, n)[1]


def batch_with_prefixes(pairs: Sequence[EncodedPair]) -> PlannedBatch:
    """All of `pairs` as one batch, in order, sharing what their prefixes allow."""
    groups = prefix_groups([e.input_ids for e in pairs]) if len(pairs) > 1 else []
    return PlannedBatch(tuple(range(len(pairs))), tuple(pairs), tuple(g for g in groups if g.length > 0))


def plan_shared(
    encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
) -> list[PlannedBatch]:
    """Batches with the fewest tokens computed under the budget, each carrying its prefix groups.

    The pairs are grouped once. They are sorted by the length left once their group's shared prefix is
    paid; the sorted run is then cut into batches by dynamic programming over the cost of each batch:
    its rows padded to its longest suffix, plus the prefix of every group it holds (a prefix runs once
    per batch), plus a fixed cost per batch. A batch's cost must fit `max_batch_tokens`, which bounds
    memory. Each batch then gets the groups that compute fewer tokens for it: the round's, or its
    own pairs grouped afresh (once, here; forward never groups again).
    """
    groups = prefix_groups([e.input_ids for e in encoded])
    group_of = [0] * len(encoded)
    shared = [0] * len(encoded)
    for gi, (g, members) in enumerate(groups):
        for i in members:
            group_of[i], shared[i] = gi, g
    order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i]) - shared[i]))
    cuts: list[list[int]] = []
    for c in range(0, len(order), PLAN_EXACT_LIMIT):
        run = order[c : c + PLAN_EXACT_LIMIT]
        cuts += _cut(
            run,
            [len(encoded[i]) - shared[i] for i in run],
            group_of,
            groups,
            max_batch_tokens,
            max_batch_size,
        )
    out: list[PlannedBatch] = []
    for batch in cuts:
        pairs = tuple(encoded[i] for i in batch)
        in_batch: dict[int, list[int]] = {}  # group → positions in this batch
        for pos, i in enumerate(batch):
            if shared[i] > 0:
                in_batch.setdefault(group_of[i], []).append(pos)
        best = tuple(PrefixGroup(groups[gi].length, m) for gi, m in in_batch.items())
        if len(batch) > 1:
            # The round's groups fit the budget, but a batch holds only some members of each: grouped on
            # their own they may share differently (several queries' pairs under one template prefix).
            # Take whichever runs fewer tokens; forward then runs exactly that.
            own = batch_with_prefixes(pairs).groups
            fits = budget_tokens(pairs, own) <= max(max_batch_tokens, budget_tokens(pairs, best))
            if fits and forward_tokens(pairs, own) < forward_tokens(pairs, best):
                best = own
        out.append(PlannedBatch(tuple(batch), pairs, best))
    return out


def _suffix_tokens(pairs: Sequence[EncodedPair], groups: Sequence[PrefixGroup]) -> int:
    start = [0] * len(pairs)
    for g, members in groups:
        for i in members:
            start[i] = g
    return max((len(p) - s for p, s in zip(pairs, start, strict=True)), default=0) * len(pairs)


def forward_tokens(pairs: Sequence[EncodedPair], groups: Sequence[PrefixGroup]) -> int:
    """Token positions a forward pass computes, padding included: every group's prefix padded to the
    longest one, then every row's suffix padded to the longest suffix."""
    return _suffix_tokens(pairs, groups) + len(groups) * max((g for g, _ in groups), default=0)


def budget_tokens(pairs: Sequence[EncodedPair], groups: Sequence[PrefixGroup]) -> int:
    """A batch's size as the planner bounds it: padded suffixes plus each group's prefix."""
    return _suffix_tokens(pairs, groups) + sum(g for g, _ in groups)


def _cut(
    order: list[int],
    suffix: list[int],
    group_of: list[int],
    groups: list[PrefixGroup],
    max_batch_tokens: int,
    max_batch_size: int,
) -> list[list[int]]:
    """Cut `order` (longest suffix first) into consecutive batches of least total cost."""
    n = len(order)
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
                prefixes += groups[gi].length
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


class PrefixKV:
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
