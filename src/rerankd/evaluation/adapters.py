"""Use a rerankd model or server from other evaluation tools.

`MtebCrossEncoder` gives any `rerankd.types.Reranker` (a local `Reranker` or a `RerankClient`) the
cross-encoder interface of the `mteb` package, without importing mteb:

    import mteb
    from rerankd import Reranker
    from rerankd.evaluation.adapters import MtebCrossEncoder

    model = MtebCrossEncoder(Reranker.from_pretrained("Qwen/Qwen3-Reranker-0.6B"), name="Qwen/Qwen3-Reranker-0.6B")
    mteb.evaluate(model, mteb.get_tasks(tasks=["SciFact"]))   # reranks the task's first-stage results

Both call styles are accepted: mteb 2.x's `predict(inputs1, inputs2, *, task_metadata, ...)` with two
data loaders of batches (`{"text": [...]}`), paired item by item; and mteb 1.x's / sentence-transformers'
`predict(sentences)` with a list of (query, document) pairs. Pairs are grouped by query, so each query
is one `score()` call (one request to a server; a shared prefix for a local Qwen3 reranker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rerankd.types import Reranker


def _flatten(batches: Iterable[Any], key: str) -> list[Any]:
    out: list[Any] = []
    for batch in batches:
        if isinstance(batch, Mapping):
            out.extend(batch.get(key) or [None] * len(batch["text"]))
        elif isinstance(batch, str):
            out.append(batch if key == "text" else None)
        else:  # a plain list of strings
            out.extend(batch if key == "text" else [None] * len(batch))
    return out


class MtebCrossEncoder:
    """A rerankd reranker as an mteb cross-encoder; `predict` returns relevance scores (numpy, float)."""

    def __init__(
        self,
        reranker: Reranker,
        *,
        instruction: str | None = None,
        name: str = "rerankd/reranker",
        revision: str | None = None,
    ) -> None:
        self.reranker = reranker
        self.instruction = instruction
        self.name = name
        self.revision = revision

    def predict(
        self,
        inputs1: Any = None,
        inputs2: Any = None,
        *,
        sentences: Sequence[Sequence[str]] | None = None,
        batch_size: int = 32,
        instruction: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Scores for (query, document) pairs, in input order."""
        import numpy as np

        default_instruction = instruction if instruction is not None else self.instruction
        if sentences is not None or inputs2 is None:
            pairs = list(sentences if sentences is not None else inputs1 or [])
            queries = [str(p[0]) for p in pairs]
            docs = [str(p[1]) for p in pairs]
            instructions: list[str | None] = [default_instruction] * len(pairs)
        else:
            texts = _flatten(inputs1, "text")
            # mteb 2.x carries an instruction next to the bare query for instructed tasks.
            bare = _flatten(inputs1, "query")
            task_instr = _flatten(inputs1, "instruction")
            queries = [b if b else t for b, t in zip(bare, texts, strict=True)]
            instructions = [i if i else default_instruction for i in task_instr]
            docs = _flatten(inputs2, "text")
            if len(docs) != len(queries):
                raise ValueError(f"predict: {len(queries)} queries but {len(docs)} documents; they pair up")
        groups: dict[tuple[str, str | None], list[int]] = {}
        for i, key in enumerate(zip(queries, instructions, strict=True)):
            groups.setdefault(key, []).append(i)
        scores = np.zeros(len(queries), dtype=np.float64)
        for (query, instr), idx in groups.items():
            got = self.reranker.score(query, [docs[i] for i in idx], instruction=instr)
            scores[idx] = got
        return scores

    @property
    def mteb_model_meta(self) -> Any:
        """mteb's ModelMeta for the results' folder name when mteb can build one, else None (mteb then
        uses its empty metadata)."""
        try:
            from mteb.models import ModelMeta  # type: ignore[import-not-found,unused-ignore]

            return ModelMeta(
                loader=None,
                name=self.name if "/" in self.name else f"rerankd/{self.name}",
                revision=self.revision or "rerankd",
                release_date=None,
                languages=None,
                framework=[],
                similarity_fn_name=None,
                n_parameters=None,
                memory_usage_mb=None,
                max_tokens=None,
                embed_dim=None,
                license=None,
                open_weights=None,
                public_training_code=None,
                public_training_data=None,
                use_instructions=True,
                training_datasets=None,
                is_cross_encoder=True,
            )
        except Exception:
            return None
