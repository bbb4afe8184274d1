"""RemoteEngine: the server's `Engine` protocol over a Ray Serve deployment handle.

The ingress runs the single-process FastAPI app unchanged (routes, validation, auth, limits, metrics);
only the engine differs: instead of a local model and batcher, each call goes to one of the model
deployment's replicas, which owns a `RerankEngine` with its own dynamic batcher. Ray's failures are
mapped to the project's errors here, so a replica that dies mid-request is a 503 with Retry-After (the
client retries and lands on a live replica), never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from rerankd.engine.engine import Scored
from rerankd.errors import Overloaded, RerankdError, Unavailable
from rerankd.models.base import ModelInfo
from rerankd.spans import SpanRequest

log = logging.getLogger("rerankd.scaleout")


def translate_ray_error(exc: BaseException, retry_after: float) -> BaseException | None:
    """The rerankd error to raise for an exception from a deployment call; None: not Ray's, re-raise it.

    - the replica raised one of ours (bad request, queue full): that error, unwrapped;
    - Serve refused for back-pressure (max_queued_requests): Overloaded (429);
    - the replica or its node died, or no replica is up yet: Unavailable (503), so clients retry.
    """
    from ray import exceptions as rex
    from ray.serve import exceptions as sex

    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause
        if isinstance(cause, RerankdError):
            return cause
        if isinstance(cause, (rex.RayActorError, rex.WorkerCrashedError, sex.RayServeException)):
            return translate_ray_error(cause, retry_after)
        return RerankdError(f"model replica failed: {type(cause).__name__}: {cause}")
    if isinstance(exc, sex.BackPressureError):
        return Overloaded("every model replica's queue is full; retry shortly", retry_after)
    if isinstance(exc, (rex.RayError, sex.RayServeException)):
        log.warning("model replica unavailable: %s: %s", type(exc).__name__, exc)
        return Unavailable(
            f"a model replica failed or is restarting ({type(exc).__name__}); retry shortly", retry_after
        )
    return None


class RemoteEngine:
    """Implements `rerankd.engine.engine.Engine` by calling the model deployment's replicas.

    `on_answer(replica_id)` is called once per answered call (the ingress counts them in /metrics).
    """

    def __init__(
        self,
        handle: Any,
        *,
        retry_after: float = 1.0,
        on_answer: Callable[[str], None] | None = None,
    ) -> None:
        self.handle = handle
        self.retry_after = retry_after
        self.on_answer = on_answer
        self._info: ModelInfo | None = None
        self._instruction: str | None = None
        self._outstanding = 0  # pairs sent to replicas and not answered yet

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise Unavailable("the model replicas are not up yet; retry shortly", self.retry_after)
        return self._info

    @property
    def instruction(self) -> str | None:
        return self._instruction

    @property
    def depth(self) -> int:
        """Pairs this ingress has sent to the replicas and not had answered yet."""
        return self._outstanding

    async def start(self) -> None:
        """Ask a replica what it serves (waits for one to be up)."""
        (info, instruction), _ = await self._call("describe", pairs=0)
        self._info, self._instruction = info, instruction

    async def stop(self) -> None:
        return None

    def warm_up(self) -> None:
        """Each replica warms itself up before it takes traffic."""
        return None

    async def _call(self, method: str, *args: Any, pairs: int, **kwargs: Any) -> tuple[Any, str]:
        self._outstanding += pairs
        try:
            result, replica = await getattr(self.handle, method).remote(*args, **kwargs)
        except Exception as e:
            mapped = translate_ray_error(e, self.retry_after)
            if mapped is None:
                raise
            raise mapped from e
        finally:
            self._outstanding -= pairs
        if self.on_answer is not None:
            self.on_answer(replica)
        return result, replica

    async def rerank_scores(
        self,
        query: str,
        documents: Sequence[str],
        *,
        instruction: str | None = None,
        max_tokens_per_doc: int | None = None,
        max_chunks_per_doc: int | None = None,
        overlap_tokens: int | None = None,
        raw: bool = False,
        truncate: bool = True,
        spans: SpanRequest | None = None,
    ) -> Scored:
        if not documents:
            return Scored([], 0, 0)
        scored, _ = await self._call(
            "rerank_scores",
            query,
            list(documents),
            pairs=len(documents),
            instruction=instruction,
            max_tokens_per_doc=max_tokens_per_doc,
            max_chunks_per_doc=max_chunks_per_doc,
            overlap_tokens=overlap_tokens,
            raw=raw,
            truncate=truncate,
            spans=spans,
        )
        return scored

    async def score_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        instruction: str | None = None,
        max_tokens_per_doc: int | None = None,
        raw: bool = False,
        truncate: bool = True,
    ) -> Scored:
        if not pairs:
            return Scored([], 0, 0)
        scored, _ = await self._call(
            "score_pairs",
            [tuple(p) for p in pairs],
            pairs=len(pairs),
            instruction=instruction,
            max_tokens_per_doc=max_tokens_per_doc,
            raw=raw,
            truncate=truncate,
        )
        return scored
