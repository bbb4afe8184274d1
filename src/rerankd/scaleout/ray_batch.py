"""`rerankd batch --ray`: score with Ray Data, `map_batches` over a pool of scorer actors (each holds
one model), on a local Ray instance or an existing cluster. Results come back in input order
(`preserve_order`), checked line by line, and go through the same writer as the single-process path, so
resuming and bad-line handling are identical. Ray is imported inside the functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rerankd.scaleout.batch import BadLine, Job, Outcome, chunk_jobs, score_chunk_locally

DEFAULT_WINDOW_PAIRS = 100_000  # pairs per Ray Data run: bounds the driver's memory


@dataclass(frozen=True)
class ModelSpec:
    """What each actor loads (passed to Reranker.from_pretrained)."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    max_length: int = 8192
    instruction: str | None = None
    max_batch_tokens: int = 8192


class ScorerActor:
    """One model per actor; a batch of rows (line, payload) in, (line, scores, error) out."""

    def __init__(self, spec: ModelSpec) -> None:
        from rerankd.reranker import Reranker

        self.spec = spec
        self.reranker = Reranker.from_pretrained(
            spec.model,
            device=spec.device,
            dtype=spec.dtype,
            max_length=spec.max_length,
            instruction=spec.instruction,
            max_batch_tokens=spec.max_batch_tokens,
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        jobs = []
        for line, payload in zip(batch["line"], batch["payload"], strict=True):
            query, documents = json.loads(str(payload))
            jobs.append(Job(int(line), query, documents))
        outcomes = score_chunk_locally(self.reranker, jobs, self.spec.instruction)
        return {
            "line": [j.line for j in jobs],
            "scores": ["" if isinstance(o, BadLine) else json.dumps(o) for o in outcomes],
            "error": [o.reason if isinstance(o, BadLine) else "" for o in outcomes],
        }


class RayScorer:
    """Scores windows of jobs with Ray Data; `concurrency` actors of `num_cpus`/`num_gpus` each."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        concurrency: int = 2,
        batch_size: int = 64,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        window_pairs: int = DEFAULT_WINDOW_PAIRS,
        ray_address: str | None = None,
        progress_bars: bool = False,
    ) -> None:
        import ray

        self.spec = spec
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.window_pairs = window_pairs
        self.own_ray = not ray.is_initialized()
        if self.own_ray:
            ray.init(address=ray_address, include_dashboard=False, logging_level=logging.WARNING)
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = progress_bars
        self.description = (
            f"{spec.model} on Ray Data ({concurrency} actors, {num_cpus:g} CPU / {num_gpus:g} GPU each)"
        )

    def _window(self, jobs: list[Job]) -> Iterator[tuple[Job, Outcome]]:
        import ray

        rows = [{"line": j.line, "payload": json.dumps([j.query, j.documents])} for j in jobs]
        blocks = max(1, min(len(rows) // max(1, self.batch_size), 4 * self.concurrency))
        ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            ScorerActor,
            fn_constructor_args=(self.spec,),
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.concurrency),
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus or None,
        )
        expected = iter(jobs)
        for row in ds.iter_rows():
            job = next(expected)
            if int(row["line"]) != job.line:
                raise RuntimeError(f"Ray Data returned line {row['line']} where line {job.line} was due")
            if row["error"]:
                yield job, BadLine(job.line, str(row["error"]))
            else:
                yield job, [float(x) for x in json.loads(row["scores"])]
        leftover = next(expected, None)
        if leftover is not None:
            raise RuntimeError(f"Ray Data returned no result for line {leftover.line}")

    def stream(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Outcome]]:
        for window in chunk_jobs(jobs, self.window_pairs):
            yield from self._window(window)

    def close(self) -> None:
        if self.own_ray:
            import ray

            ray.shutdown()
