"""Scores on disk, so an interrupted evaluation continues where it stopped.

SQLite, one row per (model, instruction, query hash, document hash) → score; and one row per scoring
call (model, instruction, query hash, hash of the documents scored) → pairs and seconds, so a resumed or
repeated run reports the speed that was measured when the scores were computed. Each query's scores are
committed together, once the reranker has returned them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    model TEXT NOT NULL, instruction TEXT NOT NULL, query TEXT NOT NULL, doc TEXT NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (model, instruction, query, doc)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS timings (
    model TEXT NOT NULL, instruction TEXT NOT NULL, query TEXT NOT NULL, docs TEXT NOT NULL,
    pairs INTEGER NOT NULL, seconds REAL NOT NULL,
    PRIMARY KEY (model, instruction, query, docs)
) WITHOUT ROWID;
"""

# The instruction key for "the reranker's default" (None), which differs from an empty instruction.
DEFAULT_INSTRUCTION_KEY = "\x00default"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def docs_hash(doc_hashes: Sequence[str]) -> str:
    return text_hash("\n".join(sorted(doc_hashes)))


def instruction_key(instruction: str | None) -> str:
    return DEFAULT_INSTRUCTION_KEY if instruction is None else instruction


class ScoreCache:
    """`path=None` keeps everything in memory (nothing survives the process)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path) if self.path is not None else ":memory:")
        self._db.executescript(_SCHEMA)
        self.hits = 0
        self.misses = 0

    def lookup(
        self, model: str, instruction: str | None, query: str, doc_hashes: Sequence[str]
    ) -> list[float | None]:
        """Cached scores for the documents (by hash), None where there is none; counts hits and misses."""
        rows = self._db.execute(
            "SELECT doc, score FROM scores WHERE model = ? AND instruction = ? AND query = ?",
            (model, instruction_key(instruction), text_hash(query)),
        ).fetchall()
        known = dict(rows)
        out = [known.get(h) for h in doc_hashes]
        found = sum(s is not None for s in out)
        self.hits += found
        self.misses += len(out) - found
        return out

    def store(
        self,
        model: str,
        instruction: str | None,
        query: str,
        doc_hashes: Sequence[str],
        scores: Sequence[float],
        seconds: float,
    ) -> None:
        """The scores of one scoring call and how long it took, in one transaction."""
        instr, q = instruction_key(instruction), text_hash(query)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
                [(model, instr, q, h, float(s)) for h, s in zip(doc_hashes, scores, strict=True)],
            )
            self._db.execute(
                "INSERT OR REPLACE INTO timings VALUES (?, ?, ?, ?, ?, ?)",
                (model, instr, q, docs_hash(doc_hashes), len(doc_hashes), seconds),
            )

    def timing(
        self, model: str, instruction: str | None, query: str, doc_hashes: Sequence[str]
    ) -> float | None:
        """Seconds of a call that scored exactly these documents for this query, if one was recorded."""
        row = self._db.execute(
            "SELECT seconds FROM timings WHERE model = ? AND instruction = ? AND query = ? AND docs = ?",
            (model, instruction_key(instruction), text_hash(query), docs_hash(doc_hashes)),
        ).fetchone()
        return None if row is None else float(row[0])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        self._db.close()
