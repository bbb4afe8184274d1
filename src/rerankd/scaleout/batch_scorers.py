"""The scorers of `rerankd batch`: what turns jobs into scores, behind one protocol (`BatchScorer`).
`LocalScorer`: one model in this process; `ClientScorer`: through a rerankd server (or another rerank
API); the Ray Data scorer is in `rerankd.scaleout.ray_batch`. Imports neither torch nor Ray at the top."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from rerankd.scaleout.batch_files import BadLine, Job, Outcome

DEFAULT_CHUNK_PAIRS = 256  # pairs scored per model call in the single-process scorer
DEFAULT_CLIENT_CONCURRENCY = 4  # requests in flight through a server


class BatchScorer(Protocol):
    """Turns jobs into outcomes, in input order. `stream` may read ahead; it must yield every job once."""

    description: str

    def stream(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Outcome]]: ...

    def close(self) -> None: ...


def chunk_jobs(jobs: Iterable[Job], max_pairs: int, max_jobs: int = 1 << 30) -> Iterator[list[Job]]:
    """Consecutive jobs grouped up to `max_pairs` pairs (a bigger job is a chunk of its own)."""
    chunk: list[Job] = []
    pairs = 0
    for job in jobs:
        if chunk and (pairs + len(job.documents) > max_pairs or len(chunk) >= max_jobs):
            yield chunk
            chunk, pairs = [], 0
        chunk.append(job)
        pairs += len(job.documents)
    if chunk:
        yield chunk


def score_chunk_locally(reranker: Any, jobs: Sequence[Job], instruction: str | None = None) -> list[Outcome]:
    """Scores for consecutive jobs with one local Reranker: all their pairs go through the model
    together (batched under its token budget), then are split back per job. Used by the Ray actors too."""
    from rerankd.errors import RerankdError
    from rerankd.models.base import sigmoid

    encoded: list[Any] = []
    spans: list[tuple[int, int] | BadLine] = []
    for job in jobs:
        try:
            pairs = reranker.encode(job.query, job.documents, instruction=instruction)
        except (RerankdError, ValueError) as e:
            spans.append(BadLine(job.line, f"could not be scored: {e}"))
            continue
        spans.append((len(encoded), len(encoded) + len(pairs)))
        encoded += pairs
    logits = reranker.logits(encoded) if encoded else []
    return [
        span if isinstance(span, BadLine) else [sigmoid(x) for x in logits[span[0] : span[1]]]
        for span in spans
    ]


class LocalScorer:
    """One process, one model: pairs of consecutive lines are batched together."""

    def __init__(
        self, reranker: Any, *, instruction: str | None = None, chunk_pairs: int = DEFAULT_CHUNK_PAIRS
    ) -> None:
        self.reranker = reranker
        self.instruction = instruction
        self.chunk_pairs = chunk_pairs
        self.description = f"{reranker.info.name} ({reranker.info.device}, {reranker.info.dtype})"

    def stream(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Outcome]]:
        for chunk in chunk_jobs(jobs, self.chunk_pairs):
            yield from zip(chunk, score_chunk_locally(self.reranker, chunk, self.instruction), strict=True)

    def close(self) -> None:
        return None


class ClientScorer:
    """Through a rerankd server (or any rerank API the client speaks): `concurrency` requests at once,
    answers in input order. The client retries 429/503/5xx and connection errors; a request the server
    refuses as invalid (4xx) marks its line bad; any other failure stops the run (rerun to resume)."""

    def __init__(
        self, client: Any, *, concurrency: int = DEFAULT_CLIENT_CONCURRENCY, instruction: str | None = None
    ) -> None:
        self.client = client
        self.concurrency = max(1, concurrency)
        self.instruction = instruction
        self.description = f"server {getattr(client, 'base_url', '')}".strip()

    def _score(self, job: Job) -> Outcome:
        from rerankd.client.errors import ClientError
        from rerankd.errors import InvalidRequest

        kwargs = {"instruction": self.instruction} if self.instruction is not None else {}
        try:
            scores = self.client.score(job.query, job.documents, **kwargs)
        except ClientError as e:
            status = getattr(e, "status", None)
            if status is not None and 400 <= status < 500 and status not in (401, 403, 408, 429):
                return BadLine(job.line, f"refused by the server ({status}): {e}")
            raise
        except InvalidRequest as e:  # refused by the client's own checks
            return BadLine(job.line, f"could not be scored: {e}")
        return [float(s) for s in scores]

    def stream(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Outcome]]:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="rerankd-batch") as pool:
            window: list[tuple[Job, Future[Outcome]]] = []
            try:
                for job in jobs:
                    window.append((job, pool.submit(self._score, job)))
                    if len(window) >= 2 * self.concurrency:
                        first, fut = window.pop(0)
                        yield first, fut.result()
                while window:
                    first, fut = window.pop(0)
                    yield first, fut.result()
            finally:
                for _, fut in window:
                    fut.cancel()

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()
