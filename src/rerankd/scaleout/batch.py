"""Offline batch scoring: a JSONL file of queries with their documents in, a JSONL file of scores out,
in input order, resumable. Never imports Ray (the Ray scorer lives in `rerankd.scaleout.ray_batch`).

Input, one JSON object a line:
    {"query": "...", "documents": ["...", {"text": "..."}], "id": ...}   # a query and its candidates
    {"query": "...", "document": "...", "id": ...}                      # one pair
Output, one line per scored input line, in input order (`line` is the input's 1-based line number, `id`
its id or null):
    {"line": 1, "id": "q1", "scores": [0.93, 0.01]}
    {"line": 2, "id": null, "score": 0.42}

Resuming: the output is appended to, one flushed line per input line, so a rerun reads the line numbers
already written, repairs a last line cut short by an interruption, and scores only the rest: every line
is written exactly once. Bad lines (invalid JSON, a missing or mistyped field) are reported on stderr
with their line number, listed in the summary and skipped; they are never written and never silently
dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Exit codes of `rerankd batch`.
EXIT_COMPLETE = 0  # every input line is in the output (scored now or by an earlier run)
EXIT_BAD_LINES = 1  # every good line is in the output; some lines were bad (listed) and skipped
EXIT_USAGE = 2  # bad options or files; nothing was scored
EXIT_INCOMPLETE = 3  # stopped before the end (an error, --limit, an interruption): rerun to resume

DEFAULT_CHUNK_PAIRS = 256  # pairs scored per model call in the single-process scorer


class BatchError(Exception):
    """A problem with the files or options: reported and the run exits with EXIT_USAGE."""


@dataclass(frozen=True)
class Job:
    """One good input line: a query with its documents, or one pair (`pair=True`, one document)."""

    line: int
    query: str
    documents: list[str]
    pair: bool = False
    id: Any = None


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


Outcome = list[float] | BadLine  # the scores of a job, or why it could not be scored


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    return None


def parse_line(number: int, raw: bytes | str) -> Job | BadLine | None:
    """A job, a bad line with the reason, or None for a blank line."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as e:
        return BadLine(number, f"not UTF-8 ({e.reason} at byte {e.start})")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return BadLine(number, f"not valid JSON ({e.msg} at column {e.colno})")
    if not isinstance(obj, dict):
        return BadLine(number, f"expected a JSON object, got {type(obj).__name__}")
    query = obj.get("query")
    if query is None:
        return BadLine(number, 'missing "query"')
    if not isinstance(query, str):
        return BadLine(number, f'"query" must be a string, got {type(query).__name__}')
    has_docs, has_doc = "documents" in obj, "document" in obj
    if has_docs and has_doc:
        return BadLine(number, 'give "documents" (a list) or "document" (one pair), not both')
    if has_doc:
        doc = _text(obj["document"])
        if doc is None:
            return BadLine(number, '"document" must be a string or an object with a string "text"')
        return Job(number, query, [doc], pair=True, id=obj.get("id"))
    if not has_docs:
        return BadLine(number, 'missing "documents" (a list) or "document" (one pair)')
    docs = obj["documents"]
    if not isinstance(docs, list):
        return BadLine(number, f'"documents" must be a list, got {type(docs).__name__}')
    texts: list[str] = []
    for i, d in enumerate(docs):
        t = _text(d)
        if t is None:
            return BadLine(number, f'"documents"[{i}] must be a string or an object with a string "text"')
        texts.append(t)
    return Job(number, query, texts, id=obj.get("id"))


def result_line(job: Job, scores: Sequence[float]) -> str:
    record: dict[str, Any] = {"line": job.line, "id": job.id}
    if job.pair:
        record["score"] = scores[0]
    else:
        record["scores"] = list(scores)
    return json.dumps(record, ensure_ascii=False)


def count_lines(path: Path) -> int:
    """Lines in the file (a last line without a newline counts)."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def prepare_output(path: Path) -> set[int]:
    """Line numbers already in the output. A last line cut short by an interruption (no newline) is
    removed; a complete line that is not a result stops the run (this is not a file we wrote)."""
    done: set[int] = set()
    if not path.exists():
        return done
    good_end = 0  # byte offset after the last complete line
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                break  # the last line, cut short: written again below
            try:
                line = json.loads(raw)["line"]
                if not isinstance(line, int) or isinstance(line, bool):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise BatchError(
                    f"{path}: line {number} is not a rerankd batch result; refusing to append to it"
                ) from None
            done.add(line)
            good_end += len(raw)
    if path.stat().st_size != good_end:
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return done


class Scorer(Protocol):
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

    def __init__(self, client: Any, *, concurrency: int = 4, instruction: str | None = None) -> None:
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


@dataclass
class Summary:
    total_lines: int = 0
    scored: int = 0  # lines scored by this run
    pairs: int = 0
    already_done: int = 0  # lines found in the output from an earlier run
    blank: int = 0
    bad: list[BadLine] = field(default_factory=list)
    stopped: str | None = None  # why the run ended before the last line
    unexpected: int = 0  # output lines whose line number is past the input's end

    @property
    def complete(self) -> bool:
        return self.stopped is None

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return EXIT_INCOMPLETE
        return EXIT_BAD_LINES if self.bad else EXIT_COMPLETE

    def lines(self, output: Path, max_bad: int = 20) -> list[str]:
        status = (
            "complete"
            if self.complete and not self.bad
            else "INCOMPLETE"
            if not self.complete
            else "done with bad lines"
        )
        out = [
            f"rerankd batch: {status}: {self.total_lines} input lines: {self.scored} scored now "
            f"({self.pairs} pairs), {self.already_done} already in {output}, {len(self.bad)} bad, "
            f"{self.blank} blank"
        ]
        for b in self.bad[:max_bad]:
            out.append(f"  bad line {b.line}: {b.reason}")
        if len(self.bad) > max_bad:
            out.append(f"  ... and {len(self.bad) - max_bad} more bad lines (each reported above)")
        if self.unexpected:
            out.append(
                f"  warning: {self.unexpected} output lines name line numbers past the input's end "
                "(was the input changed?)"
            )
        if self.stopped:
            out.append(f"  stopped: {self.stopped}; rerun the same command to resume")
        return out


Report = Callable[[str], None]


def run_batch(
    input_path: Path,
    output_path: Path,
    scorer: Scorer,
    *,
    limit: int | None = None,
    report: Report | None = None,
    advance: Callable[[int], None] | None = None,
) -> Summary:
    """Score every line of `input_path` not yet in `output_path`, appending results in input order.
    `limit`: score at most this many lines in this run. `report(message)`: bad lines as they are found.
    `advance(n)`: progress, in input lines. Errors from the scorer end the run with `stopped` set."""
    if not input_path.exists():
        raise BatchError(f"{input_path}: no such file")
    if input_path.resolve() == output_path.resolve():
        raise BatchError("--output must differ from --input")
    summary = Summary(total_lines=count_lines(input_path))
    done = prepare_output(output_path)
    summary.unexpected = sum(1 for n in done if n > summary.total_lines)
    report = report or (lambda _: None)
    tick = advance or (lambda _: None)
    state = {"taken": 0, "exhausted": False}

    def jobs() -> Iterator[Job]:
        with open(input_path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if number in done:
                    summary.already_done += 1
                    tick(1)
                    continue
                parsed = parse_line(number, raw.rstrip(b"\r\n"))
                if parsed is None:
                    summary.blank += 1
                    tick(1)
                elif isinstance(parsed, BadLine):
                    summary.bad.append(parsed)
                    report(f"line {parsed.line}: {parsed.reason}")
                    tick(1)
                else:
                    if limit is not None and state["taken"] >= limit:
                        return
                    state["taken"] += 1
                    yield parsed
        state["exhausted"] = True

    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "a", encoding="utf-8") as out:
        try:
            for job, outcome in scorer.stream(jobs()):
                if isinstance(outcome, BadLine):
                    summary.bad.append(outcome)
                    report(f"line {outcome.line}: {outcome.reason}")
                else:
                    out.write(result_line(job, outcome) + "\n")
                    out.flush()
                    summary.scored += 1
                    summary.pairs += len(job.documents)
                tick(1)
        except KeyboardInterrupt:
            summary.stopped = "interrupted"
        except Exception as e:
            summary.stopped = f"{type(e).__name__}: {e}"
        finally:
            out.flush()
            os.fsync(out.fileno())
    if summary.stopped is None and not state["exhausted"]:
        summary.stopped = f"--limit {limit} reached"
    summary.bad.sort(key=lambda b: b.line)
    return summary
