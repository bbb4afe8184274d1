"""An LRU of scores, so a pair seen before skips the model (`--score-cache N`).

The key is a digest of exactly what the model reads: the pair's token ids (template, instruction, query
and document all enter them) and token types, under the model's name. Equal keys therefore mean equal
inputs and the cached log-odds are the ones a forward pass gives for that pair alone. A 16-byte digest,
not the ids, is kept, so N entries cost about N x 100 bytes whatever the documents' lengths.

Used from the event loop only (the engine looks up before it submits and stores after), so it needs no
lock."""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence

from rerankd.models.base import EncodedPair


class ScoreCache:
    def __init__(self, capacity: int, model: str) -> None:
        if capacity < 1:
            raise ValueError(f"a score cache holds at least one pair, got {capacity}")
        self.capacity = capacity
        self._salt = model.encode("utf-8", "surrogatepass")
        self._scores: OrderedDict[bytes, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._scores)

    def key(self, pair: EncodedPair) -> bytes:
        h = hashlib.blake2b(self._salt, digest_size=16)
        h.update(array("q", pair.input_ids).tobytes())
        if pair.token_type_ids is not None:
            h.update(b"\x00types")
            h.update(array("q", pair.token_type_ids).tobytes())
        return h.digest()

    def lookup(self, pairs: Sequence[EncodedPair]) -> tuple[list[float | None], list[bytes]]:
        """Each pair's cached log-odds (None: not cached) and its key, for `store`."""
        keys = [self.key(p) for p in pairs]
        found: list[float | None] = []
        for k in keys:
            value = self._scores.get(k)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self._scores.move_to_end(k)
            found.append(value)
        return found, keys

    def store(self, keys: Sequence[bytes], logits: Sequence[float]) -> None:
        for k, v in zip(keys, logits, strict=True):
            self._scores[k] = v
            self._scores.move_to_end(k)
        while len(self._scores) > self.capacity:
            self._scores.popitem(last=False)
