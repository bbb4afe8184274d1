"""Offline batch scoring: a JSONL file of queries with their documents in, a JSONL file of scores out,
in input order, resumable. This module runs a batch (`run_batch`) and sums it up (`Summary`, the exit
code); the files are read and written by `batch_files`, the scoring is a `BatchScorer` from
`batch_scorers` (one process, a server) or `ray_batch` (Ray Data). Never imports Ray.

The file formats are in `batch_files`.

Resuming: the output is appended to, one flushed line per input line, so a rerun reads the line numbers
already written, repairs a last line cut short by an interruption, and scores only the rest: every line
is written exactly once. Bad lines (invalid JSON, a missing or mistyped field) are reported on stderr
with their line number, listed in the summary and skipped; they are never written and never silently
dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rerankd.scaleout.batch_files import (
    BadLine,
    BatchError,
    Job,
    Outcome,
    count_lines,
    parse_line,
    prepare_output,
    result_line,
)
from rerankd.scaleout.batch_scorers import BatchScorer, ClientScorer, LocalScorer

# The names callers import from here, wherever they live now.
__all__ = [
    "EXIT_BAD_LINES",
    "EXIT_COMPLETE",
    "EXIT_INCOMPLETE",
    "EXIT_USAGE",
    "BadLine",
    "BatchError",
    "BatchScorer",
    "ClientScorer",
    "Job",
    "LocalScorer",
    "Outcome",
    "Summary",
    "count_lines",
    "parse_line",
    "prepare_output",
    "run_batch",
]

# Exit codes of `rerankd batch`.
EXIT_COMPLETE = 0  # every input line is in the output (scored now or by an earlier run)
EXIT_BAD_LINES = 1  # every good line is in the output; some lines were bad (listed) and skipped
EXIT_USAGE = 2  # bad options or files; nothing was scored
EXIT_INCOMPLETE = 3  # stopped before the end (an error, --limit, an interruption): rerun to resume


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
    scorer: BatchScorer,
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
