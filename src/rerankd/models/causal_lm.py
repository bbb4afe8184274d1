"""Yes/no causal-LM rerankers (Qwen3-Reranker): score = P("yes") at the answer slot.

P(yes) = softmax([l_no, l_yes])[1] = sigmoid(l_yes - l_no), so only the last position's hidden state and
two rows of the LM head are needed, never the vocabulary-wide logits. Both rows are applied in fp32,
whatever dtype the model runs in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rerankd.errors import InvalidRequest, UnsupportedModelError
from rerankd.models.base import EncodedPair, ModelInfo
from rerankd.templates import QWEN3_RERANKER, YesNoTemplate


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
        template: YesNoTemplate = QWEN3_RERANKER,
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

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

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

    @torch.inference_mode()
    def forward(self, batch: Sequence[EncodedPair]) -> list[float]:
        if not batch:
            return []
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
        h = hidden[torch.arange(len(batch), device=device), last].float()
        logits = h @ self._head.T
        if self._head_bias is not None:
            logits = logits + self._head_bias
        return (logits[:, 0] - logits[:, 1]).tolist()
