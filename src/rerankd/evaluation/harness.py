"""Rerank first-stage candidates with one or more rerankers, side by side, and measure them.

Any `rerankd.types.Reranker` works (a local model or a remote client): only `score()` is called, once
per query with all the query's uncached candidates, so a local model reuses the query's prefix and a
remote provider gets one request per query.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rerankd.errors import RerankdError
from rerankd.evaluation import metrics
from rerankd.evaluation.cache import ScoreCache, text_hash
from rerankd.evaluation.dataset import BeirDataset
from rerankd.evaluation.errors import EvalError, RerankerFailed
from rerankd.evaluation.runs import Ranking, sort_ranking
from rerankd.types import Reranker

# (system name, pairs just done, total pairs of the system): for a progress bar.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class RerankerSpec:
    """A reranker to evaluate. `model_key` identifies its scores in the cache: the same key must mean
    the same scores (model files, dtype, endpoint...)."""

    name: str
    reranker: Reranker
    model_key: str
    kind: str = "local"  # local | remote | custom
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timing:
    pairs_scored: int = 0  # scored by the reranker in this run
    pairs_cached: int = 0  # read from the cache
    timed_queries: int = 0
    timed_pairs: int = 0
    timed_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    warmed: bool = False

    def summary(self) -> dict[str, Any]:
        import numpy as np

        lat = np.asarray(self.latencies, dtype=float) * 1000.0
        return {
            "pairs_scored": self.pairs_scored,
            "pairs_cached": self.pairs_cached,
            "timed_queries": self.timed_queries,
            "pairs_per_second": (self.timed_pairs / self.timed_seconds) if self.timed_seconds > 0 else None,
            "latency_ms": {
                "p50": float(np.percentile(lat, 50)) if lat.size else None,
                "p95": float(np.percentile(lat, 95)) if lat.size else None,
                "mean": float(lat.mean()) if lat.size else None,
            },
        }


@dataclass
class SystemResult:
    name: str
    spec: RerankerSpec
    instruction: str | None
    ranking: Ranking
    per_query: dict[str, dict[str, float]]
    metrics: dict[str, dict[str, float]]  # language ("all" first) → metric → value
    timing: Timing


@dataclass
class EvalResult:
    dataset: BeirDataset
    query_ids: list[str]
    first_stage: dict[str, Any]  # name, method, top_k, candidates, seconds
    first_stage_ranking: Ranking
    first_stage_per_query: dict[str, dict[str, float]]
    first_stage_metrics: dict[str, dict[str, float]]
    systems: list[SystemResult]
    cache: dict[str, Any]

    @property
    def stages(self) -> dict[str, dict[str, dict[str, float]]]:
        """stage name → language → metric → value; the first stage first."""
        return {self.first_stage["name"]: self.first_stage_metrics} | {
            s.name: s.metrics for s in self.systems
        }


def system_names(
    specs: Sequence[RerankerSpec], instructions: Sequence[str | None], taken: set[str]
) -> list[str]:
    """One unique name per (reranker, instruction), in that order."""
    names: list[str] = []
    seen = set(taken)
    for spec in specs:
        for i, _ in enumerate(instructions):
            base = spec.name if len(instructions) == 1 else f"{spec.name} (instruction {i + 1})"
            name, n = base, 2
            while name in seen:
                name, n = f"{base} #{n}", n + 1
            seen.add(name)
            names.append(name)
    return names


def rerank_query(
    spec: RerankerSpec,
    instruction: str | None,
    query: str,
    doc_ids: Sequence[str],
    texts: Sequence[str],
    cache: ScoreCache,
    timing: Timing,
) -> list[tuple[str, float]]:
    """The candidates of one query, reranked."""
    hashes = [text_hash(t) for t in texts]
    found = cache.lookup(spec.model_key, instruction, query, hashes)
    missing = [i for i, s in enumerate(found) if s is None]
    timing.pairs_cached += len(found) - len(missing)
    if missing:
        try:
            if not timing.warmed:  # one untimed call first: lazy setup (a provider's detection, kernels)
                spec.reranker.score(query, [texts[missing[0]]], instruction=instruction)
                timing.warmed = True
            start = time.perf_counter()
            new = spec.reranker.score(query, [texts[i] for i in missing], instruction=instruction)
            seconds = time.perf_counter() - start
        except RerankdError as e:
            raise RerankerFailed(f"{spec.name}: {e}") from e
        if len(new) != len(missing):
            raise EvalError(f"{spec.name}: returned {len(new)} scores for {len(missing)} documents")
        cache.store(spec.model_key, instruction, query, [hashes[i] for i in missing], new, seconds)
        for i, s in zip(missing, new, strict=True):
            found[i] = float(s)
        timing.pairs_scored += len(missing)
    seconds_all = cache.timing(spec.model_key, instruction, query, hashes)
    if seconds_all is not None:  # a call scored all these candidates at once: a query's latency
        timing.timed_queries += 1
        timing.timed_pairs += len(hashes)
        timing.timed_seconds += seconds_all
        timing.latencies.append(seconds_all)
    ranked = [(d, float(s)) for d, s in zip(doc_ids, found, strict=True) if s is not None]
    return sort_ranking(ranked)


def evaluate(
    dataset: BeirDataset,
    specs: Sequence[RerankerSpec],
    candidates: Ranking,
    *,
    query_ids: Sequence[str],
    first_stage: dict[str, Any],
    instructions: Sequence[str | None] = (None,),
    cache: ScoreCache | None = None,
    progress: ProgressCallback | None = None,
) -> EvalResult:
    """Metrics of the candidates (before) and of each reranker × instruction (after), on `query_ids`.

    `candidates` is the first stage's ranking, already cut to its top k. Scores go through `cache`
    (in memory when None): with a cache on disk, a second call after an interruption only scores what
    the first did not."""
    if not specs:
        raise EvalError("no reranker to evaluate: pass --model and/or --url")
    qids = list(query_ids)
    cache = cache if cache is not None else ScoreCache(None)
    hits0, misses0 = cache.hits, cache.misses
    langs = {q: dataset.queries[q].lang for q in qids}

    first_pq = metrics.per_query(dataset.qrels, candidates, qids)
    instrs = list(instructions) or [None]
    names = system_names(specs, instrs, {first_stage["name"]})
    total = sum(len(candidates.get(q, [])) for q in qids)

    systems: list[SystemResult] = []
    jobs = [(spec, instr) for spec in specs for instr in instrs]
    for name, (spec, instr) in zip(names, jobs, strict=True):
        timing = Timing()
        ranking: Ranking = {}
        if progress:
            progress(name, 0, total)
        for qid in qids:
            docs = candidates.get(qid, [])
            if not docs:
                ranking[qid] = []
                continue
            doc_ids = [d for d, _ in docs]
            texts = [dataset.corpus[d].full_text for d in doc_ids]
            ranking[qid] = rerank_query(spec, instr, dataset.queries[qid].text, doc_ids, texts, cache, timing)
            if progress:
                progress(name, len(docs), total)
        pq = metrics.per_query(dataset.qrels, ranking, qids)
        systems.append(
            SystemResult(
                name=name,
                spec=spec,
                instruction=instr,
                ranking=ranking,
                per_query=pq,
                metrics=metrics.by_language(pq, langs, qids),
                timing=timing,
            )
        )
    return EvalResult(
        dataset=dataset,
        query_ids=qids,
        first_stage=first_stage,
        first_stage_ranking=candidates,
        first_stage_per_query=first_pq,
        first_stage_metrics=metrics.by_language(first_pq, langs, qids),
        systems=systems,
        cache={
            "path": str(cache.path) if cache.path else None,
            "hits": cache.hits - hits0,
            "misses": cache.misses - misses0,
        },
    )


def first_stage_candidates(
    dataset: BeirDataset,
    query_ids: Sequence[str],
    *,
    top_k: int,
    candidates_file: str | None = None,
) -> tuple[Ranking, dict[str, Any]]:
    """The first stage's top_k per query: from a TREC run file, else BM25 over the corpus."""
    from rerankd.evaluation.runs import read_trec_run
    from rerankd.evaluation.runs import top_k as cut

    start = time.perf_counter()
    info: dict[str, Any]
    if candidates_file is not None:
        from pathlib import Path

        run = read_trec_run(candidates_file)
        unknown = sorted({d for q in query_ids for d, _ in run.get(q, []) if d not in dataset.corpus})
        if unknown:
            raise EvalError(
                f"--candidates {candidates_file}: {len(unknown)} document ids are not in corpus.jsonl "
                f"(first: {', '.join(unknown[:3])}); is the run for this dataset?"
            )
        if not any(q in run for q in query_ids):
            raise EvalError(
                f"--candidates {candidates_file}: no query of the qrels split is in the run; is the run for "
                f"this dataset and split?"
            )
        ranking = cut({q: run.get(q, []) for q in query_ids}, top_k)
        info = {
            "name": Path(candidates_file).stem or "candidates",
            "method": "run",
            "candidates": str(candidates_file),
        }
    else:
        from rerankd.evaluation.first_stage import bm25_candidates

        ranking = bm25_candidates(dataset, list(query_ids), top_k)
        info = {"name": "bm25", "method": "bm25", "candidates": None, "library": "bm25s"}
    info |= {"top_k": top_k, "seconds": time.perf_counter() - start}
    return ranking, info
