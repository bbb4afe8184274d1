"""TREC run files: `qid Q0 docid rank score tag`, one line per retrieved document.

In memory a run is a `Ranking`: per query, (doc id, score) pairs best first, always in trec_eval's order
(score descending, ties by doc id descending), so metrics match what trec_eval says of the files.
"""

from __future__ import annotations

import re
from pathlib import Path

from rerankd.evaluation.errors import EvalError

Ranking = dict[str, list[tuple[str, float]]]


def read_trec_run(path: str | Path) -> Ranking:
    path = Path(path)
    if not path.is_file():
        raise EvalError(
            f"--candidates {path}: no such file; pass a TREC run file (qid Q0 docid rank score tag)"
        )
    per_query: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise EvalError(
                    f"{path}, line {n}: expected 6 columns 'qid Q0 docid rank score tag', got {len(parts)}"
                )
            qid, _, did, _, score, _ = parts
            try:
                value = float(score)
            except ValueError:
                raise EvalError(f"{path}, line {n}: the score {score!r} is not a number") from None
            per_query.setdefault(qid, {})[did] = value
    if not per_query:
        raise EvalError(f"--candidates {path}: the run file is empty")
    return {qid: sort_ranking(list(docs.items())) for qid, docs in per_query.items()}


def sort_ranking(docs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Best first, ties by doc id descending: trec_eval's order, so a written run file evaluates to the
    same numbers as the report."""
    return sorted(docs, key=lambda d: (d[1], d[0]), reverse=True)


def write_trec_run(path: Path, ranking: Ranking, tag: str) -> Path:
    """Write a run; `tag` loses whitespace (the format splits on it)."""
    tag = re.sub(r"\s+", "_", tag) or "rerankd"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for qid, docs in ranking.items():
            for rank, (did, score) in enumerate(docs, 1):
                f.write(f"{qid} Q0 {did} {rank} {score!r} {tag}\n")
    return path


def top_k(ranking: Ranking, k: int) -> Ranking:
    return {qid: docs[:k] for qid, docs in ranking.items()}
