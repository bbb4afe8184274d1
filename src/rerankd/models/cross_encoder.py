"""Sequence-classification cross-encoders (bge-reranker, ms-marco MiniLM...): query and document as a
text pair, truncated to the model's maximum; log-odds from the classification head."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch

from rerankd.errors import UnsupportedModelError
from rerankd.models.base import EncodedPair, ModelInfo, PlannedBatch, plan_by_length
from rerankd.models.documents import chunk_text, token_windows, truncate_text


class CrossEncoderScorer:
    def __init__(self, model: Any, tokenizer: Any, *, info: ModelInfo) -> None:
        num_labels = int(model.config.num_labels)
        if num_labels not in (1, 2):
            raise UnsupportedModelError(
                f"{info.name}: a classification head with {num_labels} labels is not a relevance score; "
                "rerankd supports 1 label (sigmoid) or 2 labels (softmax, second label)"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.num_labels = num_labels
        self.pad_id = int(tokenizer.pad_token_id or 0)
        self._lock = threading.Lock()

    def encode(
        self,
        query: str,
        document: str,
        *,
        instruction: str | None = None,
        max_document_tokens: int | None = None,
    ) -> EncodedPair:
        with self._lock:
            if max_document_tokens is not None:
                document = truncate_text(self.tokenizer, document, max_document_tokens)
            return self._encode(query, document)

    def _encode(self, query: str, document: str) -> EncodedPair:
        # Cross-encoders take no instruction; it is accepted so callers need not know the family.
        # Batch form on purpose: a single call treats an empty document as "no second text" and drops
        # its separator, unlike the batched calls that cross-encoder libraries make.
        # A fast tokenizer keeps its truncation setting as state, and each call below changes it:
        # concurrent encodes (the server tokenizes in threads) must not interleave: callers hold _lock.
        enc = self.tokenizer([query], [document], truncation=True, max_length=self.info.max_length)
        ids = list(enc["input_ids"][0])
        # Only a pair that fills max_length can have been cut; tokenize again only then.
        sent = (
            len(self.tokenizer([query], [document], truncation=False, verbose=False)["input_ids"][0])
            if len(ids) >= self.info.max_length
            else len(ids)
        )
        return EncodedPair(
            input_ids=ids,
            token_type_ids=list(enc["token_type_ids"][0]) if "token_type_ids" in enc else None,
            truncated=sent > len(ids),
            sent_tokens=sent if sent > len(ids) else None,
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
        with self._lock:
            parts = chunk_text(self.tokenizer, document, chunk_tokens, overlap_tokens, max_chunks)
            return [self._encode(query, part) for part in parts]

    def windows(
        self, document: str, *, window_tokens: int, overlap_tokens: int, max_tokens: int
    ) -> list[tuple[int, int]]:
        with self._lock:
            return token_windows(self.tokenizer, document, window_tokens, overlap_tokens, max_tokens)

    def room(self, query: str, instruction: str | None = None) -> int:
        return self.info.max_length - len(self.encode(query, ""))

    def plan(
        self, encoded: Sequence[EncodedPair], max_batch_tokens: int, max_batch_size: int
    ) -> list[PlannedBatch]:
        return plan_by_length(encoded, max_batch_tokens, max_batch_size)

    @torch.inference_mode()
    def forward(self, planned: PlannedBatch) -> list[float]:
        batch = planned.pairs
        if not batch:
            return []
        device = next(self.model.parameters()).device
        width = max(len(e) for e in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        types = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            ids[row, : len(e)] = torch.tensor(e.input_ids)
            mask[row, : len(e)] = 1
            if e.token_type_ids is not None:
                types[row, : len(e)] = torch.tensor(e.token_type_ids)
        inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        if batch[0].token_type_ids is not None:
            inputs["token_type_ids"] = types.to(device)
        logits = self.model(**inputs).logits.float()
        if self.num_labels == 1:
            return logits[:, 0].tolist()
        # Two labels: softmax(...)[1] == sigmoid(l1 - l0).
        return (logits[:, 1] - logits[:, 0]).tolist()
