"""The client's pure logic, module by module: retry policy and delays on an injected clock,
Retry-After, error mapping, templating, request bodies per dialect, strict answer parsing, chunk
merging, the token bucket, provider detection. No sockets, no torch."""

from __future__ import annotations

import builtins
import email.utils
import subprocess
import sys

import pytest

from rerankd.client import _detect, _dialects, _limits, _merge, _retry
from rerankd.client import errors as cerr
from rerankd.client.errors import (
    AuthenticationError,
    BadRequestError,
    ClientError,
    ConnectionError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from rerankd.errors import RerankdError
from rerankd.templates import QWEN3_RERANKER, split_templated
from rerankd.types import Document

# ---------------------------------------------------------------------------- Retry-After and delays


def test_retry_after_seconds_ms_and_http_date() -> None:
    assert cerr.parse_retry_after({"Retry-After": "2"}) == 2.0
    assert cerr.parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert cerr.parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert cerr.parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(30.0)
    assert (
        cerr.parse_retry_after({"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0
    )
    assert cerr.parse_retry_after({"Retry-After": "soon"}) is None
    assert cerr.parse_retry_after({"Retry-After": "-3"}) == 0.0
    assert cerr.parse_retry_after({}) is None


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = _retry.RetryPolicy(initial_delay=0.5, max_delay=4.0, jitter=0.5)
    assert [policy.backoff(n, rand=0.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.backoff(2, rand=0.999) == pytest.approx(0.5, abs=1e-3)  # 1.0 * (1 - 0.5 * 0.999)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run_attempts(policy: _retry.RetryPolicy, errors: list[ClientError], t: FakeTime) -> ClientError | None:
    """Drive Attempts as the I/O loop does: each error in turn, sleeping the computed delay."""
    attempts = _retry.Attempts(policy, timeout=10.0, clock=t.clock, rand=lambda: 0.0)
    for e in errors:
        try:
            t.sleep(attempts.next_delay(e))
        except ClientError as final:
            return final
    return None


def test_retries_transient_errors_with_backoff_then_gives_up() -> None:
    t = FakeTime()
    errors: list[ClientError] = [ServerError("boom", status=503) for _ in range(5)]
    final = run_attempts(_retry.RetryPolicy(max_retries=3, deadline=None), errors, t)
    assert final is errors[3] and final.attempts == 4
    assert t.slept == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("bad", status=400),
        AuthenticationError("no key", status=401),
        NotFoundError("nope", status=404),
        InvalidResponseError("no results", status=200),
    ],
)
def test_errors_that_cannot_succeed_are_not_retried(error: ClientError) -> None:
    t = FakeTime()
    assert run_attempts(_retry.RetryPolicy(max_retries=5), [error], t) is error
    assert t.slept == []


def test_retry_after_is_honoured_and_capped() -> None:
    t = FakeTime()
    errors: list[ClientError] = [
        RateLimitError("slow down", status=429, retry_after=3.0),
        RateLimitError("slow down", status=429, retry_after=500.0),
    ]
    policy = _retry.RetryPolicy(max_retries=5, max_retry_after=20.0, deadline=None)
    assert run_attempts(policy, errors, t) is None
    assert t.slept == [3.0, 20.0]


def test_deadline_stops_retries() -> None:
    t = FakeTime()
    # 0.5 s, then 1.0 s would end at 1.5 s: past a 1.2 s deadline, so the second error is final.
    errors: list[ClientError] = [ServerError("x", status=503) for _ in range(5)]
    final = run_attempts(_retry.RetryPolicy(max_retries=10, deadline=1.2), errors, t)
    assert final is errors[1] and t.slept == [0.5]
    # A Retry-After beyond the deadline is not waited for at all.
    t = FakeTime()
    err = RateLimitError("quota", status=429, retry_after=10.0)
    assert run_attempts(_retry.RetryPolicy(max_retries=3, deadline=5.0), [err], t) is err
    assert t.slept == []


def test_attempt_timeout_is_cut_to_the_deadline() -> None:
    t = FakeTime()
    attempts = _retry.Attempts(_retry.RetryPolicy(deadline=5.0), timeout=3.0, clock=t.clock)
    assert attempts.timeout() == 3.0
    t.now += 4.0
    assert attempts.timeout() == pytest.approx(1.0)
    t.now += 2.0
    with pytest.raises(TimeoutError, match="deadline"):
        attempts.timeout()


# ---------------------------------------------------------------------------- errors


def rerankd_error_body(message: str, code: str) -> bytes:
    import json

    return json.dumps(
        {"error": {"message": message, "type": "x", "code": code}, "message": message, "detail": message}
    ).encode()


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, BadRequestError, False),
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (404, NotFoundError, False),
        (408, TimeoutError, True),
        (409, BadRequestError, True),
        (413, BadRequestError, False),
        (422, BadRequestError, False),
        (429, RateLimitError, True),
        (500, ServerError, True),
        (503, ServerError, True),
    ],
)
def test_status_maps_to_a_typed_error(status: int, cls: type[ClientError], retryable: bool) -> None:
    e = cerr.error_from_response(
        status,
        {"x-request-id": "rid-1", "Retry-After": "4"},
        rerankd_error_body("went wrong", "some_code"),
        sent_request_id="sent",
    )
    assert type(e) is cls and e.retryable is retryable
    assert isinstance(e, ClientError) and isinstance(e, RerankdError)
    assert (e.status, e.message, e.request_id, e.server_code, e.retry_after) == (
        status,
        "went wrong",
        "rid-1",
        "some_code",
        4.0,
    )
    assert str(e) == f"{status}: went wrong (request id rid-1)"


def test_error_bodies_of_other_shapes() -> None:
    e = cerr.error_from_response(400, {}, b'{"detail": [{"msg": "field required"}]}', sent_request_id="s")
    assert e.message == "field required" and e.request_id == "s"
    e = cerr.error_from_response(502, {}, b"<html>Bad Gateway</html>")
    assert e.message == "<html>Bad Gateway</html>"
    e = cerr.error_from_response(400, {}, b'{"message": "invalid top_n", "id": "cohere-id"}')
    assert e.message == "invalid top_n" and e.request_id == "cohere-id"
    e = cerr.error_from_response(503, {}, b"", reason="Service Unavailable")
    assert e.message == "Service Unavailable"


def test_transport_errors_are_typed_and_subclass_the_builtins() -> None:
    import httpx

    t = cerr.error_from_transport(httpx.ReadTimeout("read timed out"), url="u", request_id="r")
    c = cerr.error_from_transport(httpx.RemoteProtocolError("disconnected"), url="u", request_id="r")
    assert isinstance(t, TimeoutError) and isinstance(t, builtins.TimeoutError) and t.retryable
    assert isinstance(c, ConnectionError) and isinstance(c, builtins.ConnectionError) and c.retryable
    assert t.status is None and t.request_id == "r"


# ---------------------------------------------------------------------------- templating and bodies


def test_client_template_reproduces_the_reference_prompt() -> None:
    query, doc, instr = "capital of China?", "Beijing is the capital.", "Find answers"
    ref = QWEN3_RERANKER.build(query, doc, instr)
    q, d = _dialects.qwen3_query(query, instr), _dialects.qwen3_document(doc)
    assert q + d == ref.prefix + ref.body + ref.suffix
    # The server splits it back into exactly the reference parts, so it never wraps twice.
    split = split_templated(q, d)
    assert split is not None and (split.prefix, split.body, split.suffix) == (
        ref.prefix,
        ref.body,
        ref.suffix,
    )
    assert _dialects.qwen3_query(q) == q  # already templated: left alone
    default = QWEN3_RERANKER.build(query, doc)
    assert _dialects.qwen3_query(query) + d == default.prefix + default.body + default.suffix


@pytest.mark.parametrize(
    ("provider", "template", "model", "expected"),
    [
        ("vllm", "auto", "Qwen/Qwen3-Reranker-0.6B", True),
        ("siliconflow", "auto", "qwen/qwen3-reranker-8b", True),
        ("vllm", "auto", "BAAI/bge-reranker-v2-m3", False),
        ("vllm", "auto", None, False),
        ("rerankd", "auto", "Qwen/Qwen3-Reranker-0.6B", False),
        ("cohere", "auto", "Qwen/Qwen3-Reranker-0.6B", False),
        ("jina", "auto", "qwen3-reranker", False),
        ("tei", "auto", "qwen3-reranker", False),
        ("vllm", None, "Qwen/Qwen3-Reranker-0.6B", False),
        ("vllm", "qwen3", "my-finetune", True),
        ("jina", "qwen3", "my-finetune", True),
    ],
)
def test_who_applies_the_template(
    provider: str, template: str | None, model: str | None, expected: bool
) -> None:
    assert _dialects.wants_template(provider, template, model) is expected


DOCS = ["doc a", "doc b", "doc c"]
Q3 = "Qwen/Qwen3-Reranker-0.6B"


def body(provider: str, **kw: object) -> tuple[str, dict[str, object]]:
    args: dict[str, object] = {
        "model": Q3,
        "query": "q",
        "documents": DOCS,
        "top_n": 2,
        "instruction": None,
        "template": False,
    }
    args.update(kw)
    r = _dialects.build_rerank_request(provider, **args)  # type: ignore[arg-type]
    return r.path, r.body


def test_request_bodies_per_dialect() -> None:
    assert body("rerankd", instruction="I") == (
        "/v1/rerank",
        {
            "model": Q3,
            "query": "q",
            "documents": DOCS,
            "top_n": 2,
            "return_documents": False,
            "instruction": "I",
        },
    )
    assert body("vllm", top_n=None) == ("/v1/rerank", {"model": Q3, "query": "q", "documents": DOCS})
    assert body("cohere") == ("/v2/rerank", {"model": Q3, "query": "q", "documents": DOCS, "top_n": 2})
    assert body("jina") == (
        "/v1/rerank",
        {"model": Q3, "query": "q", "documents": DOCS, "top_n": 2, "return_documents": False},
    )
    assert body("tei") == (
        "/rerank",
        {"query": "q", "texts": DOCS, "raw_scores": False, "return_text": False, "truncate": True},
    )
    path, b = body("siliconflow", template=True, instruction="I")
    assert path == "/v1/rerank" and "instruction" not in b  # it is in the template instead
    assert b["query"] == _dialects.qwen3_query("q", "I")
    assert b["documents"] == [_dialects.qwen3_document(d) for d in DOCS]
    assert body("rerankd", model=None)[1].get("model", "absent") == "absent"
    with pytest.raises(ValueError, match="unknown provider"):
        body("openai")


# ---------------------------------------------------------------------------- answers


def req(n: int = 3, top_n: int | None = None, offset: int = 0) -> _dialects.Request:
    return _dialects.build_rerank_request(
        "rerankd",
        model=None,
        query="q",
        documents=[f"d{i}" for i in range(n)],
        top_n=top_n,
        instruction=None,
        template=False,
        offset=offset,
    )


def test_every_answer_shape_is_read() -> None:
    results = {
        "model": "m",
        "results": [{"index": 2, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.5}],
        "usage": {"prompt_tokens": 12, "total_tokens": 12},
    }
    chunk = _dialects.parse_rerank_answer(results, req(3, top_n=2))
    assert chunk.items == [(2, 0.9), (0, 0.5)] and chunk.model == "m" and chunk.prompt_tokens == 12
    tei = [{"index": 1, "score": 0.7}, {"index": 0, "score": 0.2}]
    assert _dialects.parse_rerank_answer(tei, req(2)).items == [(1, 0.7), (0, 0.2)]
    data = {"data": [{"index": 0, "relevance_score": 1}], "tokens": {"input_tokens": 5}}
    assert _dialects.parse_rerank_answer(data, req(1)).prompt_tokens == 5


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"id": "x", "model": "m"}, "no results"),
        ({"error": {"message": "quota exceeded"}}, "quota exceeded"),
        ({"results": []}, "0 results for 2 documents"),
        ([], "0 results"),
        ({"results": [{"index": 5, "relevance_score": 1.0}]}, "outside"),
        ({"results": [{"index": 0, "relevance_score": 1.0}, {"index": 0, "relevance_score": 1.0}]}, "twice"),
        ({"results": [{"index": 0, "relevance_score": float("nan")}]}, "finite"),
        ({"results": [{"index": 0}]}, "finite"),
        ({"results": [{"index": True, "relevance_score": 1.0}]}, "outside"),
        ("ok", "not a rerank result"),
    ],
)
def test_bad_answers_are_errors_never_empty_results(payload: object, match: str) -> None:
    with pytest.raises(InvalidResponseError, match=match):
        _dialects.parse_rerank_answer(payload, req(2))


def test_slices_merge_with_global_indices_and_top_n_after_the_merge() -> None:
    assert _merge.plan_slices(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert _merge.plan_slices(5, None) == [(0, 5)]
    assert _merge.plan_slices(2, 2) == [(0, 2)]
    docs = [Document(text=f"d{i}", id=str(i)) for i in range(5)]
    scores = [0.1, 0.8, 0.3, 0.9, 0.5]
    answers = []
    for start, end in _merge.plan_slices(5, 2):
        r = req(end - start, offset=start)
        items = sorted(((i, scores[start + i]) for i in range(end - start)), key=lambda p: -p[1])
        answers.append((r, _dialects.SliceAnswer(items, "m", 3)))
    result = _merge.merge_ranking(answers, docs, top_n=3, return_documents=True, model="fallback")
    assert result.indices == [3, 1, 4] and result.scores == [0.9, 0.8, 0.5]
    assert [r.document.id for r in result if r.document] == ["3", "1", "4"]
    assert result.model == "m" and result.usage.prompt_tokens == 9
    assert _merge.merge_scores(answers, 5) == scores
    with pytest.raises(InvalidResponseError, match="no score"):
        _merge.merge_scores(answers[:2], 5)


# ---------------------------------------------------------------------------- limits and detection


def test_token_bucket_spaces_requests() -> None:
    bucket = _limits.TokenBucket(rate=5.0, burst=1, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == pytest.approx([0.0, 0.2, 0.4])
    bucket = _limits.TokenBucket(rate=5.0, burst=2, now=0.0)
    assert bucket.reserve(10.0) == 0.0 and bucket.reserve(10.0) == 0.0
    assert bucket.reserve(10.0) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        _limits.RateLimit(requests_per_second=0)


def test_provider_detection() -> None:
    rerankd = _detect.parse_models({"object": "list", "data": [{"id": "Qwen3-Reranker", "templated": True}]})
    assert _detect.detect_provider(rerankd) == _detect.Detection(
        "rerankd", "Qwen3-Reranker", "GET /v1/models lists a model card with 'templated'"
    )
    vllm = _detect.parse_models({"data": [{"id": "Qwen/Qwen3-Reranker-0.6B", "owned_by": "vllm"}]})
    assert _detect.detect_provider(vllm).provider == "vllm"
    other = _detect.detect_provider(_detect.parse_models({"data": [{"id": "x", "owned_by": "someone"}]}))
    assert other.fallback and other.provider == "rerankd" and other.model == "x"
    assert _detect.detect_provider(None, "GET /v1/models: 404").fallback
    with pytest.raises(InvalidResponseError):
        _detect.parse_models({"data": [{"name": 3}]})


def test_the_client_stays_light() -> None:
    code = (
        "import sys, rerankd.client, rerankd.client.errors;"
        "print(sorted(m for m in ('torch', 'transformers', 'fastapi', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def drive(answers: dict[str, object]) -> tuple[list[str], _detect.Detection]:
    """Run the one detection routine as both clients do, answering each request from `answers`
    (a payload, or a ClientError to throw in)."""
    asked: list[str] = []
    steps = _detect.detection_steps("http://h")
    request = next(steps)
    try:
        while True:
            asked.append(request.path)
            answer = answers[request.path]
            request = steps.throw(answer) if isinstance(answer, ClientError) else steps.send(answer)
    except StopIteration as done:
        return asked, done.value


def test_detection_steps_ask_models_then_tei_info() -> None:
    asked, found = drive({"/v1/models": {"data": [{"id": "m", "templated": True}]}})
    assert asked == ["/v1/models"] and (found.provider, found.model) == ("rerankd", "m")
    tei = {"model_id": "BAAI/bge-reranker-base", "model_type": {"reranker": {}}}
    asked, found = drive({"/v1/models": NotFoundError("no route", status=404), "/info": tei})
    assert asked == ["/v1/models", "/info"] and (found.provider, found.model) == ("tei", tei["model_id"])
    asked, found = drive({"/v1/models": {"oops": 1}, "/info": NotFoundError("no", status=404)})
    assert asked == ["/v1/models", "/info"] and found.fallback and "GET /v1/models" in found.reason
    denied = AuthenticationError("bad key", status=401)
    with pytest.raises(AuthenticationError) as info:
        drive({"/v1/models": denied})
    assert info.value is denied
    with pytest.raises(ServerError):
        drive({"/v1/models": NotFoundError("no", status=404), "/info": ServerError("down", status=503)})
