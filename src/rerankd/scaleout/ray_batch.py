"""`rerankd batch --ray`: score with Ray Data, `map_batches` over a pool of scorer actors (each loads
the ModelConfig with the BatchConfig, as the one-process path does), on a local Ray instance or an
existing cluster (the ScaleConfig's address and per-actor resources). Results come back in input order
(`preserve_order`), checked line by line, and go through the same writer as the single-process path, so
resuming and bad-line handling are identical. Ray is imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from rerankd.config import BatchConfig, ModelConfig
from rerankd.scaleout.batch_files import BadLine, Job, Outcome
from rerankd.scaleout.batch_scorers import chunk_jobs, score_chunk_locally
from rerankd.scaleout.scale import ScaleConfig

DEFAULT_WINDOW_PAIRS = 100_000  # pairs per Ray Data run: bounds the driver's memory
DEFAULT_CONCURRENCY = 2  # scorer actors
DEFAULT_BATCH_SIZE = 64  # input lines per map_batches batch


class ScorerActor:
    """One model per actor, loaded from the configs like the one-process path; a batch of rows (line,
    payload) in, (line, scores, error) out."""

    def __init__(self, model: ModelConfig, batch: BatchConfig) -> None:
        from rerankd.reranker import load_reranker

        self.reranker = load_reranker(model, batch)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        jobs = []
        for line, payload in zip(batch["line"], batch["payload"], strict=True):
            query, documents = json.loads(str(payload))
            jobs.append(Job(int(line), query, documents))
        outcomes = score_chunk_locally(self.reranker, jobs)
        return {
            "line": [j.line for j in jobs],
            "scores": ["" if isinstance(o, BadLine) else json.dumps(o) for o in outcomes],
            "error": [o.reason if isinstance(o, BadLine) else "" for o in outcomes],
        }


class RayScorer:
    """A BatchScorer on Ray Data: `concurrency` actors, each with `scale.num_cpus` / `scale.num_gpus`,
    on the cluster at `scale.address` (or a local one)."""

    def __init__(
        self,
        model: ModelConfig,
        batch: BatchConfig,
        scale: ScaleConfig,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        window_pairs: int = DEFAULT_WINDOW_PAIRS,
        progress_bars: bool = False,
    ) -> None:
        from rerankd.scaleout.scale import connect_ray

        self.model = model
        self.batch = batch
        self.scale = scale
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.window_pairs = window_pairs
        self.own_ray = connect_ray(scale.address)
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = progress_bars
        self.description = (
            f"{model.name} on Ray Data ({concurrency} actors, "
            f"{scale.num_cpus:g} CPU / {scale.num_gpus:g} GPU each)"
        )

    def _window(self, jobs: list[Job]) -> Iterator[tuple[Job, Outcome]]:
        import ray

        rows = [{"line": j.line, "payload": json.dumps([j.query, j.documents])} for j in jobs]
        blocks = max(1, min(len(rows) // max(1, self.batch_size), 4 * self.concurrency))
        ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            ScorerActor,
            fn_constructor_args=(self.model, self.batch),
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.concurrency),
            num_cpus=self.scale.num_cpus,
            num_gpus=self.scale.num_gpus or None,
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
