"""Scoring backends. Importing this package pulls torch; the library's light parts never do.

It first bounds oneDNN's caches (`bound_native_caches`), before `rerankd.models.*` imports torch."""

from __future__ import annotations

import os

# Entries kept in each of the two per-shape caches below. One forward pass builds about 5 matmul shapes
# per pass (q, k/v, o, gate/up, down; two passes with prefix sharing), so 64 keeps every shape a pass
# reuses across its layers; an entry costs ~0.35-0.5 MiB (JIT code), whatever the model's size.
NATIVE_CACHE_CAPACITY = 64
NATIVE_CACHE_VARS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def bound_native_caches() -> None:
    """Cap oneDNN's primitive cache and ideep's LRU cache (both 1024 entries by default, keyed by the
    input shape) unless the user set them. bf16 matmuls on CPU run through oneDNN, and a server sees a
    new (rows, columns) shape in nearly every batch, so at the default the two caches grew RSS by
    ~0.7 MiB per new shape (+304 MiB/min in the soak) until 1024 shapes were held. Both are read when
    the first oneDNN primitive is made, so this must run before any bf16 matmul, not before `import
    torch`; setting them later does nothing."""
    for var in NATIVE_CACHE_VARS:
        os.environ.setdefault(var, str(NATIVE_CACHE_CAPACITY))


bound_native_caches()
