"""Evaluation harness: BEIR-format datasets, first-stage candidates, metrics (pytrec_eval), reports.

Everything here works with any `rerankd.types.Reranker`: a local model or a remote client. Importing
this package is light; numpy, bm25s, pytrec_eval and matplotlib load when they are used.
"""
