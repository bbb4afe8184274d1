"""An independent, naive implementation of the official Qwen3-Reranker algorithm, written from its
published description and sharing no code with rerankd: full forward pass, full-vocabulary logits,
left padding, log_softmax over [no, yes] at the last position, fp32.

The parity tests check rerankd against it and `rerankd bench` times it as the baseline, so there is one
reference and both measure against the same thing."""

from __future__ import annotations

from typing import Any

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"
BATCH_SIZE = 8  # the model card's example batch


def format_instruction(instruction: str | None, query: str, doc: str) -> str:
    if instruction is None:
        instruction = DEFAULT_TASK
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"


class ReferenceQwen3Reranker:
    def __init__(self, model_dir: str, max_length: int = 8192, batch_size: int = BATCH_SIZE) -> None:
        # torch loads here, not at import, so that importing rerankd.testing stays light.
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self.yes = self.tokenizer.convert_tokens_to_ids("yes")
        self.no = self.tokenizer.convert_tokens_to_ids("no")
        self.prefix_tokens = self.tokenizer.encode(PREFIX, add_special_tokens=False)
        self.suffix_tokens = self.tokenizer.encode(SUFFIX, add_special_tokens=False)

    def process_inputs(self, texts: list[str]) -> Any:
        inputs = self.tokenizer(
            texts,
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ids in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ids + self.suffix_tokens
        return self.tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=self.max_length)

    def compute(self, texts: list[str]) -> list[float]:
        torch = self.torch
        out: list[float] = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                inputs = self.process_inputs(texts[start : start + self.batch_size])
                logits = self.model(**inputs).logits[:, -1, :]
                pair = torch.stack([logits[:, self.no], logits[:, self.yes]], dim=1).float()
                out += torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp().tolist()
        return out

    def score(self, query: str, docs: list[str], instruction: str | None = None) -> list[float]:
        return self.compute([format_instruction(instruction, query, d) for d in docs])

    def count_tokens(self, query: str, docs: list[str], instruction: str | None = None) -> int:
        """Tokens of the templated pairs, untruncated (the work a benchmark counts)."""
        bodies = self.tokenizer(
            [format_instruction(instruction, query, d) for d in docs], add_special_tokens=False
        )["input_ids"]
        fixed = len(self.prefix_tokens) + len(self.suffix_tokens)
        return sum(fixed + len(ids) for ids in bodies)
