"""IR metrics from pytrec_eval (trec_eval's own code), never written by hand here.

nDCG@10 (trec_eval's ndcg_cut: gain = the grade, log2 discount), MRR@10 (recip_rank over the top 10),
Recall@10 and @100, MAP. A query's metrics follow the order of the given ranking exactly: it is passed
to trec_eval as descending rank-scores, so ties in the original scores cannot reorder it.
Queries the ranking misses score 0; means are over the evaluated queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rerankd.evaluation.dataset import Qrels
from rerankd.evaluation.runs import Ranking

METRICS: tuple[str, ...] = ("nDCG@10", "MRR@10", "Recall@10", "Recall@100", "MAP")

_TREC_NAMES = {
    "nDCG@10": "ndcg_cut_10",
    "Recall@10": "recall_10",
    "Recall@100": "recall_100",
    "MAP": "map",
}


def _as_trec_run(
    ranking: Ranking, qids: Sequence[str], depth: int | None = None
) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for qid in qids:
        docs = ranking.get(qid, [])[:depth]
        if docs:
            run[qid] = {did: float(len(docs) - i) for i, (did, _) in enumerate(docs)}
    return run


def per_query(qrels: Qrels, ranking: Ranking, qids: Sequence[str]) -> dict[str, dict[str, float]]:
    """{qid: {metric: value}} for every id in qids."""
    import pytrec_eval

    judged = {qid: qrels.get(qid, {}) for qid in qids}
    main = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.10,100", "map"})
    rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"})
    full = main.evaluate(_as_trec_run(ranking, qids))
    top10 = rr.evaluate(_as_trec_run(ranking, qids, depth=10))
    out: dict[str, dict[str, float]] = {}
    for qid in qids:
        values = {name: float(full.get(qid, {}).get(trec, 0.0)) for name, trec in _TREC_NAMES.items()}
        values["MRR@10"] = float(top10.get(qid, {}).get("recip_rank", 0.0))
        out[qid] = {m: values[m] for m in METRICS}
    return out


def mean(values: Mapping[str, Mapping[str, float]], qids: Sequence[str]) -> dict[str, float]:
    if not qids:
        return dict.fromkeys(METRICS, 0.0)
    return {m: sum(values[q][m] for q in qids) / len(qids) for m in METRICS}


def by_language(
    values: Mapping[str, Mapping[str, float]], langs: Mapping[str, str | None], qids: Sequence[str]
) -> dict[str, dict[str, float]]:
    """{"all": means, <lang>: means, ...}; languages in sorted order, queries without one only in "all"."""
    groups: dict[str, list[str]] = {}
    for qid in qids:
        lang = langs.get(qid)
        if lang:
            groups.setdefault(lang, []).append(qid)
    return {"all": mean(values, qids)} | {lang: mean(values, groups[lang]) for lang in sorted(groups)}
