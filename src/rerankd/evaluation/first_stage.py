"""First-stage candidates: BM25 (bm25s) over the whole corpus, with a tokenizer that also splits
Chinese and Japanese text (which has no spaces) into character bigrams."""

from __future__ import annotations

import re
import unicodedata

from rerankd.evaluation.dataset import BeirDataset
from rerankd.evaluation.runs import Ranking, sort_ranking

# Han, Hiragana, Katakana, Hangul: scripts written without spaces between words (Hangul has spaces,
# but bigrams are a robust default there too).
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff66-\uff9f"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"[{_CJK}]+")


def tokenize(text: str) -> list[str]:
    """Lowercased words; runs of CJK characters become overlapping bigrams (a lone character stays)."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(unicodedata.normalize("NFKC", text).lower()):
        tok = match.group()
        if _CJK_RUN.fullmatch(tok):
            tokens.extend([tok] if len(tok) == 1 else [tok[i : i + 2] for i in range(len(tok) - 1)])
        else:
            tokens.append(tok)
    return tokens


def bm25_candidates(dataset: BeirDataset, query_ids: list[str], top_k: int) -> Ranking:
    """The top_k documents per query by BM25 (bm25s, Lucene's variant, k1=1.5 b=0.75); documents that
    share no term with the query are left out, as a search engine would."""
    import bm25s

    doc_ids = list(dataset.corpus)
    retriever = bm25s.BM25()
    retriever.index([tokenize(dataset.corpus[d].full_text) for d in doc_ids], show_progress=False)
    k = min(top_k, len(doc_ids))
    docs, scores = retriever.retrieve(
        [tokenize(dataset.queries[q].text) for q in query_ids], k=k, show_progress=False
    )
    ranking: Ranking = {}
    for row, qid in enumerate(query_ids):
        ranking[qid] = sort_ranking(
            [(doc_ids[int(i)], float(s)) for i, s in zip(docs[row], scores[row], strict=True) if float(s) > 0]
        )
    return ranking
