"""The evaluation harness's pieces, without torch: metrics checked against hand-computed values, run
files, the BEIR loader's errors, the tokenizer, the score cache, the sample data and the mteb adapter."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from rerankd.evaluation import metrics
from rerankd.evaluation.adapters import MtebCrossEncoder
from rerankd.evaluation.cache import ScoreCache, text_hash
from rerankd.evaluation.dataset import SAMPLE_DIR, load_beir, read_qrels
from rerankd.evaluation.errors import EvalError
from rerankd.evaluation.first_stage import bm25_candidates, tokenize
from rerankd.evaluation.harness import RerankerSpec, evaluate
from rerankd.evaluation.runs import read_trec_run, write_trec_run
from rerankd.types import DocumentLike, RerankResult, as_document

QRELS = {"q1": {"d1": 0, "d2": 2, "d3": 1}}


def test_three_document_run_by_hand() -> None:
    # Ranking d1 (grade 0), d2 (grade 2), d3 (grade 1). trec_eval's nDCG gain is the grade itself.
    dcg = 0 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)  # 1.7619
    idcg = 2 / math.log2(2) + 1 / math.log2(3)  # 2.6309
    m = metrics.per_query(QRELS, {"q1": [("d1", 3.0), ("d2", 2.0), ("d3", 1.0)]}, ["q1"])["q1"]
    assert m["nDCG@10"] == pytest.approx(dcg / idcg)  # 0.6697
    assert m["MRR@10"] == pytest.approx(1 / 2)  # the first relevant document is second
    assert m["Recall@10"] == pytest.approx(1.0) and m["Recall@100"] == pytest.approx(1.0)
    assert m["MAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # precision at each relevant document


def test_perfect_and_reversed_rankings() -> None:
    best = metrics.per_query(QRELS, {"q1": [("d2", 0.9), ("d3", 0.5), ("d1", 0.1)]}, ["q1"])["q1"]
    assert best["nDCG@10"] == pytest.approx(1.0) and best["MRR@10"] == 1.0 and best["MAP"] == 1.0
    worst = metrics.per_query(QRELS, {"q1": [("d1", 0.9), ("d3", 0.5), ("d2", 0.1)]}, ["q1"])["q1"]
    assert worst["nDCG@10"] == pytest.approx((1 / math.log2(3) + 2 / 2) / (2 + 1 / math.log2(3)))
    assert worst["MRR@10"] == pytest.approx(1 / 2)


def test_the_given_order_counts_not_the_scores() -> None:
    # Equal scores: trec_eval alone would break the tie by document id; the ranking's order is kept.
    m = metrics.per_query(QRELS, {"q1": [("d1", 1.0), ("d2", 1.0), ("d3", 1.0)]}, ["q1"])["q1"]
    assert m["MRR@10"] == pytest.approx(1 / 2)


def test_mrr_is_cut_at_ten_and_recall_at_ten_and_hundred() -> None:
    qrels = {"q": {"rel": 1}}
    at = {
        n: metrics.per_query(qrels, {"q": [(f"x{i}", 0.0) for i in range(n - 1)] + [("rel", 0.0)]}, ["q"])[
            "q"
        ]
        for n in (10, 11, 101)
    }
    assert at[10]["MRR@10"] == pytest.approx(0.1) and at[10]["Recall@10"] == 1.0
    assert at[11]["MRR@10"] == 0.0 and at[11]["Recall@10"] == 0.0 and at[11]["Recall@100"] == 1.0
    assert at[101]["Recall@100"] == 0.0 and at[101]["MAP"] == pytest.approx(1 / 101)


def test_a_query_missing_from_the_run_scores_zero_and_languages_group() -> None:
    qrels = {"a": {"d": 1}, "b": {"d": 1}, "c": {"e": 1}}
    per = metrics.per_query(qrels, {"a": [("d", 1.0)], "c": [("e", 1.0)]}, ["a", "b", "c"])
    assert per["b"] == dict.fromkeys(metrics.METRICS, 0.0)
    by = metrics.by_language(per, {"a": "en", "b": "en", "c": "zh"}, ["a", "b", "c"])
    assert list(by) == ["all", "en", "zh"]
    assert by["all"]["MRR@10"] == pytest.approx(2 / 3)
    assert by["en"]["MRR@10"] == pytest.approx(1 / 2) and by["zh"]["MRR@10"] == 1.0


def test_run_files_round_trip_in_trec_eval_order(tmp_path: Path) -> None:
    path = write_trec_run(tmp_path / "r.trec", {"q1": [("b", 2.0), ("a", 1.0)], "q2": [("c", 0.5)]}, "my run")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 b 1 2.0 my_run" and len(lines) == 3
    # Ties are ordered the way trec_eval orders them: by document id, descending.
    path.write_text("q1 Q0 a 1 1.0 x\nq1 Q0 c 2 1.0 x\nq1 Q0 b 3 3.0 x\n")
    assert [d for d, _ in read_trec_run(path)["q1"]] == ["b", "c", "a"]
    path.write_text("q1 Q0 a 1\n")
    with pytest.raises(EvalError, match="6 columns"):
        read_trec_run(path)


def test_tokenizer_splits_cjk_into_bigrams() -> None:
    assert tokenize("Which river flows through Vienna?") == ["which", "river", "flows", "through", "vienna"]
    assert tokenize("哪条河流经维也纳？") == ["哪条", "条河", "河流", "流经", "经维", "维也", "也纳"]
    assert tokenize("東京タワーはいつ") == ["東京", "京タ", "タワ", "ワー", "ーは", "はい", "いつ"]
    assert tokenize("于1889年建成") == ["于", "1889", "年建", "建成"]  # digits are not glued to the han
    assert tokenize("Ｔｏｋｙｏ Tower-Bridge 1889") == ["tokyo", "tower", "bridge", "1889"]


def test_qrels_formats(tmp_path: Path) -> None:
    beir = tmp_path / "a.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n")
    trec = tmp_path / "b.txt"
    trec.write_text("q1 0 d1 2\nq1 0 d2 0\n")
    assert read_qrels(beir) == read_qrels(trec) == {"q1": {"d1": 2, "d2": 0}}


def _dataset(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "Paris", "text": "Paris lies on the Seine."}\n'
        '{"_id": "d2", "title": "", "text": "Berlin lies on the Spree."}\n'
    )
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "river Paris", "lang": "en"}\n')
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nqX\td2\t1\n")
    return root


def test_load_beir_and_its_errors(tmp_path: Path) -> None:
    ds = load_beir(_dataset(tmp_path / "ok"))
    assert ds.corpus["d1"].full_text == "Paris Paris lies on the Seine."
    assert ds.corpus["d2"].full_text == "Berlin lies on the Spree."
    assert ds.eval_query_ids() == ["q1"] and ds.missing_queries == ["qX"]
    with pytest.raises(EvalError, match=r"--split dev: .* this dataset has test \(pass --split test\)"):
        load_beir(tmp_path / "ok", "dev")
    with pytest.raises(EvalError, match="no such directory"):
        load_beir(tmp_path / "nope")
    (tmp_path / "ok" / "queries.jsonl").unlink()
    with pytest.raises(EvalError, match=r"missing queries\.jsonl"):
        load_beir(tmp_path / "ok")
    bad = _dataset(tmp_path / "bad")
    (bad / "corpus.jsonl").write_text('{"_id": "d1", "title": "x"}\n')
    with pytest.raises(EvalError, match=r'corpus\.jsonl, line 1: missing "text"'):
        load_beir(bad)


def test_score_cache_persists_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = ScoreCache(path)
    hashes = [text_hash("a"), text_hash("b")]
    assert cache.lookup("m", None, "q", hashes) == [None, None] and cache.misses == 2
    cache.store("m", None, "q", hashes, [0.25, 0.75], seconds=0.5)
    cache.close()
    again = ScoreCache(path)
    assert again.lookup("m", None, "q", hashes) == [0.25, 0.75] and again.hits == 2
    assert again.timing("m", None, "q", list(reversed(hashes))) == 0.5
    # Another instruction, model or query is another score; "" is not the default instruction.
    assert again.lookup("m", "", "q", hashes) == [None, None]
    assert again.lookup("m2", None, "q", hashes) == [None, None]
    assert again.lookup("m", None, "q2", hashes) == [None, None]


def test_sample_dataset_is_what_the_generator_writes(tmp_path: Path) -> None:
    from tools.make_sample_dataset import write

    fresh = write(tmp_path / "sample")
    for rel in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert (fresh / rel).read_bytes() == (SAMPLE_DIR / rel).read_bytes(), rel
    ds = load_beir("sample")
    assert ds.path == SAMPLE_DIR and 300 <= len(ds.corpus) <= 600
    langs = ds.languages(ds.eval_query_ids())
    assert {"en", "zh"} <= set(langs) and len(langs) >= 6
    grades = {g for judged in ds.qrels.values() for g in judged.values()}
    assert grades == {0, 1, 2}
    assert all(json.loads(line)["lang"] for line in (SAMPLE_DIR / "queries.jsonl").read_text().splitlines())


def test_bm25_on_the_sample_is_useful_but_not_perfect() -> None:
    ds = load_beir("sample")
    qids = ds.eval_query_ids()
    ranking = bm25_candidates(ds, qids, top_k=100)
    by = metrics.by_language(
        metrics.per_query(ds.qrels, ranking, qids), {q: ds.queries[q].lang for q in qids}, qids
    )
    for lang, m in by.items():
        assert 0.3 < m["nDCG@10"] < 0.98, (lang, m)
    assert by["all"]["Recall@100"] > 0.9


class Oracle:
    """A reranker that knows the qrels: scores = grade of the (query, document) pair."""

    def __init__(self, grades: dict[tuple[str, str], float]) -> None:
        self.grades = grades
        self.calls: list[tuple[str, int]] = []

    def score(
        self, query: str, documents: Sequence[DocumentLike], *, instruction: str | None = None
    ) -> list[float]:
        self.calls.append((query, len(documents)))
        return [self.grades.get((query, as_document(d).text), 0.0) for d in documents]

    def rerank(self, query: str, documents: Sequence[DocumentLike], **kw: object) -> RerankResult:
        raise NotImplementedError


def test_harness_with_an_oracle_reaches_the_best_possible() -> None:
    ds = load_beir("sample")
    qids = ds.eval_query_ids(max_queries=2)
    grades = {
        (ds.queries[q].text, ds.corpus[d].full_text): float(g) for q in qids for d, g in ds.qrels[q].items()
    }
    oracle = Oracle(grades)
    candidates = bm25_candidates(ds, qids, top_k=20)
    result = evaluate(
        ds,
        [RerankerSpec("oracle", oracle, "oracle", kind="custom")],
        candidates,
        query_ids=qids,
        first_stage={"name": "bm25", "method": "bm25", "top_k": 20},
    )
    after, before = result.systems[0].metrics, result.first_stage_metrics
    assert after["all"]["nDCG@10"] >= before["all"]["nDCG@10"]
    for q in qids:  # every relevant candidate above every other one
        ranked = [d for d, _ in result.systems[0].ranking[q]]
        graded = [ds.qrels[q].get(d, 0) for d in ranked]
        assert graded == sorted(graded, reverse=True)
    assert len(oracle.calls) == 1 + len(qids)  # an untimed one-pair warm-up, then one call per query
    assert oracle.calls[0][1] == 1
    assert after["all"]["Recall@100"] == before["all"]["Recall@100"]  # same candidates


def test_mteb_adapter_predict_pairs_and_batches() -> None:
    grades = {("q1", "a"): 0.9, ("q1", "b"): 0.1, ("q2", "c"): 0.5}
    oracle = Oracle(grades)
    model = MtebCrossEncoder(oracle)
    # mteb 1.x / sentence-transformers: a list of (query, document) pairs.
    out = model.predict([("q1", "a"), ("q2", "c"), ("q1", "b")], batch_size=2)
    assert out.tolist() == pytest.approx([0.9, 0.5, 0.1])
    assert sorted(oracle.calls) == [("q1", 2), ("q2", 1)]  # grouped by query, one call each
    # mteb 2.x: two dataloaders of batches, paired item by item.
    queries = [{"text": ["q1", "q2"]}, {"text": ["q1"]}]
    docs = [{"text": ["b", "c"]}, {"text": ["a"]}]
    out2 = model.predict(queries, docs, task_metadata=None, hf_split="test", hf_subset="default")
    assert out2.tolist() == pytest.approx([0.1, 0.5, 0.9])
    assert model.predict([]).shape == (0,)


def test_candidates_from_a_run_file(tmp_path: Path) -> None:
    from rerankd.evaluation.harness import first_stage_candidates

    ds = load_beir("sample")
    qids = ds.eval_query_ids(max_queries=1)
    bm25, info = first_stage_candidates(ds, qids, top_k=20)
    assert info["name"] == "bm25" and info["top_k"] == 20
    run = write_trec_run(tmp_path / "dense.trec", bm25, "dense")
    from_file, info = first_stage_candidates(ds, qids, top_k=5, candidates_file=str(run))
    assert info["name"] == "dense" and info["method"] == "run"
    assert from_file == {q: docs[:5] for q, docs in bm25.items()}
    run.write_text(run.read_text() + f"{qids[0]} Q0 not-a-doc 99 0.0 dense\n")
    with pytest.raises(EvalError, match=r"not in corpus\.jsonl"):
        first_stage_candidates(ds, qids, top_k=5, candidates_file=str(run))
    run.write_text("other Q0 en-d001 1 1.0 x\n")
    with pytest.raises(EvalError, match="no query of the qrels split"):
        first_stage_candidates(ds, qids, top_k=5, candidates_file=str(run))
