"""Causal attention for short sequences on CPU: SDPA over query chunks, each against only the keys it can see.

What transformers' SDPA path costs here (the scorer's shapes; `benchmarks/kernels_probe.py --attention`):
- With a mask (right padding in a plain pass; the prefix-sharing pass always has one), transformers
  materialises GQA's K/V with `repeat_kv` (two copies of K/V at the query head count, every layer)
  because `enable_gqa` is only requested when there is no mask; the CPU flash kernel takes GQA with a
  mask (the same bits).
- The CPU flash kernel splits the keys into blocks of 512 and skips, under `is_causal`, only whole key
  blocks past a query block's diagonal. Reranker passes have fewer than 512 keys: one block, so every
  query row computes its scores (and its softmax, and its share of P @ V) against every key, half of
  them masked out, with or without `is_causal`.

So the query rows are cut into chunks of `CHUNK` rows, and chunk [a, b) runs one SDPA call (the same
CPU flash kernel) against keys [0, end), `end` the last key any of its rows may attend to, plus one:
under a causal mask up to half the score, softmax and P @ V work is gone (~30% with workload A's
71-key shared prefix ahead of 300 own tokens). The keys dropped are masked
for every row of the chunk, so each row attends to exactly what it did. The mask (transformers' or the
scorer's prepared 4-D boolean) is read once per forward pass: the chunk bounds and each chunk's additive
float mask are kept on the mask tensor, which every layer of the pass shares. Without a mask
(transformers' causal skip when nothing is padded) the chunks take a bottom-right causal float mask.

Not bit-equal to one SDPA call: each row's softmax sums and P @ V reduce over fewer (zero) terms in
another grouping (fp32: attention outputs within ~5e-7, scores within ~1e-6; tests/integration/
test_kernels.py bounds them at 1e-5). Anything else
(dropout, softcap, a float mask, sliding windows without a mask, a single query row, non-CPU tensors)
goes to transformers' `sdpa_attention_forward` unchanged. Measured on an AMD EPYC (1 thread, CPU time):
the attention call 1.25-2x faster, the whole model on workload A 1.03x (fp32) / 1.01x (bf16) over the
other kernels alone (benchmarks/README.md, kernels section).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
import torch.nn.functional as F

# Query rows per SDPA call: the kernel's own query block is 32 rows below 192, 64 up to 768.
CHUNK = 64
# Below this many keys there is too little to skip to pay for more calls.
MIN_KEYS = 2 * CHUNK
# Without a mask, past this many keys the kernel's own causal skip (whole 512-key blocks) already saves
# most of the work, and the chunks' causal masks (~keys^2 / 2 floats) would cost more than they save.
MAX_CAUSAL_KEYS = 1024
# A pass's float chunk masks are kept only below this many mask elements (16 MiB in fp32); above it each
# call converts its boolean slice, as SDPA does with a whole mask.
MAX_FLOAT_MASK = 1 << 22
_CACHE_ATTR = "_rerankd_chunks"


def _float_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """What SDPA would make of a boolean mask (0 where allowed, -inf elsewhere), once instead of per layer."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
        allowed.logical_not(), float("-inf")
    )


def _chunks_from_mask(
    mask: torch.Tensor, dtype: torch.dtype, chunk: int
) -> list[tuple[int, int, int, torch.Tensor]]:
    """[(a, b, end, float mask [B|1, 1, b - a, end])] for a boolean [B|1, 1|H, Q, K] mask."""
    q_len, kv_len = mask.shape[-2], mask.shape[-1]
    seen = mask.flatten(0, 1).any(dim=0)  # [Q, K]: keys any batch row / head attends to
    idx = torch.arange(1, kv_len + 1, device=mask.device)
    last = torch.where(seen, idx, 0).amax(dim=-1)  # [Q]: 1 + the last key each query row sees
    ends = last.tolist()
    convert = mask.numel() <= MAX_FLOAT_MASK
    out = []
    for a in range(0, q_len, chunk):
        b = min(a + chunk, q_len)
        end = max(1, max(ends[a:b]))
        part = mask[:, :, a:b, :end]
        out.append((a, b, end, _float_mask(part, dtype) if convert else part))
    return out


@functools.lru_cache(maxsize=8)
def _chunks_causal(
    q_len: int, kv_len: int, dtype: torch.dtype, device: torch.device, chunk: int
) -> list[tuple[int, int, int, torch.Tensor]]:
    """Chunks of a bottom-right causal mask (query i sees keys 0 .. kv_len - q_len + i), for the few
    shapes of recent passes (at most MAX_CAUSAL_KEYS keys: a few MiB each)."""
    off = kv_len - q_len
    got = []
    for a in range(0, q_len, chunk):
        b = min(a + chunk, q_len)
        end = off + b
        rows = torch.arange(a, b, device=device)[:, None] + off
        allowed = torch.arange(end, device=device)[None, :] <= rows
        got.append((a, b, end, _float_mask(allowed, dtype)))
    return got


def _chunks(
    mask: torch.Tensor | None, q_len: int, kv_len: int, dtype: torch.dtype, device: torch.device, chunk: int
) -> list[tuple[int, int, int, torch.Tensor]]:
    if mask is None:
        return _chunks_causal(q_len, kv_len, dtype, device, chunk)
    try:  # outside inference mode a mask changed in place is read afresh (inference tensors have no version)
        version: int | None = mask._version
    except RuntimeError:
        version = None
    cached = getattr(mask, _CACHE_ATTR, None)
    if cached is not None and cached[0] == (dtype, chunk, version):
        return cached[1]
    got = _chunks_from_mask(mask, dtype, chunk)
    with contextlib.suppress(AttributeError, RuntimeError):  # every layer of the pass shares this mask
        setattr(mask, _CACHE_ATTR, ((dtype, chunk, version), got))
    return got


def _eligible(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    dropout: float,
    is_causal: bool | None,
    kwargs: dict[str, Any],
) -> bool:
    q_len, kv_len = query.shape[2], key.shape[2]
    if query.device.type != "cpu" or dropout or q_len < 2 or kv_len < MIN_KEYS:
        return False
    if kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None:
        return False
    if kwargs.get("output_attentions", False):
        return False
    if mask is None:  # transformers dropped a causal mask: only if nothing else (a window) was in it
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        return bool(causal) and kwargs.get("sliding_window") is None and q_len <= kv_len <= MAX_CAUSAL_KEYS
    return (
        mask.dtype == torch.bool
        and mask.dim() == 4
        and mask.shape[-2] == q_len
        and mask.shape[-1] == kv_len
        and mask.shape[1] in (1, query.shape[1])
        and mask.shape[0] in (1, query.shape[0])
    )


def sdpa_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention interface (query [B, H, Q, D], key/value [B, Hkv, K, D]; returns
    [B, Q, H, D]), causal attention by query chunks; anything it does not cover goes to transformers."""
    if not _eligible(module, query, key, attention_mask, dropout, is_causal, kwargs):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    b, heads, q_len, _ = query.shape
    gqa = heads != key.shape[1]
    out = query.new_empty((b, q_len, heads, value.shape[-1]))
    for a, e, end, mask in _chunks(attention_mask, q_len, key.shape[2], query.dtype, query.device, CHUNK):
        o = F.scaled_dot_product_attention(
            query[:, :, a:e],
            key[:, :, :end],
            value[:, :, :end],
            attn_mask=mask,
            scale=scaling,
            enable_gqa=gqa,
        )
        out[:, a:e] = o.transpose(1, 2)
    return out, None


__all__ = ["CHUNK", "sdpa_attention"]
