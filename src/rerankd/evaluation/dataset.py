"""BEIR-format datasets: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` in one directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerankd.evaluation.errors import EvalError

SAMPLE_NAME = "sample"
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class CorpusDoc:
    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """What a reranker reads: the title, then the text (BEIR's and MTEB's convention)."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    lang: str | None = None


@dataclass
class BeirDataset:
    path: Path
    split: str
    corpus: dict[str, CorpusDoc]
    queries: dict[str, Query]
    qrels: Qrels
    # Query ids the qrels judge but queries.jsonl lacks: reported, then left out.
    missing_queries: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "sample-multilingual" if self.path == SAMPLE_DIR else self.path.name

    def eval_query_ids(self, max_queries: int | None = None, langs: list[str] | None = None) -> list[str]:
        """The queries evaluated: in the qrels with at least one relevant document, and in queries.jsonl;
        in file order of queries.jsonl. `max_queries` keeps the first N per language."""
        ids = [
            qid
            for qid, q in self.queries.items()
            if any(g > 0 for g in self.qrels.get(qid, {}).values()) and (not langs or q.lang in langs)
        ]
        if max_queries is None:
            return ids
        kept: list[str] = []
        per_lang: dict[str | None, int] = {}
        for qid in ids:
            lang = self.queries[qid].lang
            if per_lang.get(lang, 0) < max_queries:
                per_lang[lang] = per_lang.get(lang, 0) + 1
                kept.append(qid)
        return kept

    def languages(self, qids: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for qid in qids:
            lang = self.queries[qid].lang
            if lang:
                counts[lang] = counts.get(lang, 0) + 1
        return dict(sorted(counts.items()))


def resolve_dataset_path(dataset: str | Path) -> Path:
    """`sample` names the bundled sample dataset; anything else is a directory."""
    if str(dataset) == SAMPLE_NAME and not Path(SAMPLE_NAME).exists():
        return SAMPLE_DIR
    return Path(dataset).expanduser().resolve()


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvalError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise EvalError(f"{path}, line {n}: expected a JSON object")
            yield n, obj


def _field(path: Path, n: int, obj: dict[str, Any], name: str, required: bool = True) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            raise EvalError(f'{path}, line {n}: missing "{name}" (BEIR format: "_id", "text", ...)')
        return ""
    if not isinstance(value, (str, int)):
        raise EvalError(f'{path}, line {n}: "{name}" must be a string')
    return str(value)


def read_qrels(path: Path) -> Qrels:
    """BEIR's TSV (`query-id corpus-id score`, header optional) or TREC qrels (`qid 0 docid grade`)."""
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 3:
                qid, did, grade = parts
            elif len(parts) == 4:
                qid, _, did, grade = parts
            else:
                raise EvalError(
                    f"{path}, line {n}: expected 'query-id<TAB>corpus-id<TAB>score' (or TREC 'qid 0 docid grade')"
                )
            try:
                value = int(float(grade))
            except ValueError:
                if n == 1:  # the header line
                    continue
                raise EvalError(f"{path}, line {n}: the relevance grade {grade!r} is not a number") from None
            qrels.setdefault(qid, {})[did] = value
    return qrels


def load_beir(dataset: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR-format directory. Every problem is an EvalError naming the file and what to fix."""
    path = resolve_dataset_path(dataset)
    if not path.is_dir():
        raise EvalError(
            f"--dataset {dataset}: no such directory; pass a BEIR-format directory (corpus.jsonl, "
            f"queries.jsonl, qrels/<split>.tsv) or 'sample' for the bundled sample dataset"
        )
    missing = [name for name in ("corpus.jsonl", "queries.jsonl") if not (path / name).is_file()]
    if missing:
        raise EvalError(
            f"--dataset {path}: missing {' and '.join(missing)}; a BEIR-format dataset has corpus.jsonl "
            f"(_id, title, text), queries.jsonl (_id, text, optional lang) and qrels/<split>.tsv"
        )
    qrels_dir = path / "qrels"
    splits = sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    qrels_path = qrels_dir / f"{split}.tsv"
    if not qrels_path.is_file():
        if not splits:
            raise EvalError(f"--dataset {path}: no qrels; add qrels/{split}.tsv (query-id, corpus-id, score)")
        raise EvalError(
            f"--split {split}: {qrels_path} does not exist; this dataset has {', '.join(splits)} "
            f"(pass --split {splits[0]})"
        )

    corpus: dict[str, CorpusDoc] = {}
    corpus_path = path / "corpus.jsonl"
    for n, obj in _jsonl(corpus_path):
        doc_id = _field(corpus_path, n, obj, "_id")
        corpus[doc_id] = CorpusDoc(
            id=doc_id,
            text=_field(corpus_path, n, obj, "text"),
            title=_field(corpus_path, n, obj, "title", required=False),
        )
    queries: dict[str, Query] = {}
    queries_path = path / "queries.jsonl"
    for n, obj in _jsonl(queries_path):
        qid = _field(queries_path, n, obj, "_id")
        lang = obj.get("lang") or (obj.get("metadata") or {}).get("lang")
        queries[qid] = Query(
            id=qid, text=_field(queries_path, n, obj, "text"), lang=str(lang) if lang else None
        )
    if not corpus:
        raise EvalError(f"{corpus_path}: the corpus is empty")

    qrels = read_qrels(qrels_path)
    ds = BeirDataset(
        path=path,
        split=split,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        missing_queries=sorted(q for q in qrels if q not in queries),
    )
    if not ds.eval_query_ids():
        raise EvalError(
            f"{qrels_path}: no query to evaluate; the qrels need at least one query of queries.jsonl "
            f"with a document graded above 0"
        )
    return ds
