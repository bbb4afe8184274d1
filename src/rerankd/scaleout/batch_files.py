"""The files of `rerankd batch`: reading the input (one job or one bad line per line), writing results,
and finding what an earlier run already wrote so a rerun resumes it.

Input, one JSON object a line:
    {"query": "...", "documents": ["...", {"text": "..."}], "id": ...}   # a query and its candidates
    {"query": "...", "document": "...", "id": ...}                      # one pair
Output, one line per scored input line, in input order (`line` is the input's 1-based line number, `id`
its id or null):
    {"line": 1, "id": "q1", "scores": [0.93, 0.01]}
    {"line": 2, "id": null, "score": 0.42}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
