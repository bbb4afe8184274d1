"""The harness's one error type: bad input named with what to change."""

from __future__ import annotations

from rerankd.errors import InvalidRequest, RerankdError


class EvalError(InvalidRequest):
    """A dataset, run file or option the harness cannot use; the message says what to change."""

    code = "eval_error"


class RerankerFailed(RerankdError):
    """A reranker raised while scoring; the message names which one (and the scores so far are kept)."""

    code = "reranker_failed"
