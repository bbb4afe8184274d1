"""What a second model costs a server: the peak RSS of `rerankd serve` with one tiny Qwen3 model, with a
second copy of it under another name, and with a tiny cross-encoder beside it, next to the weight bytes
each /v1/models card reports. The three servers run one after another in this one run.

    PYTHONPATH=src python benchmarks/multi_model_rss.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from rerankd.testing.servers import rerankd_server
from rerankd.testing.synthetic import build_cross_encoder, build_qwen3_reranker, default_tokenizer_dir


def main() -> None:
    scratch = Path(tempfile.mkdtemp())
    qwen = build_qwen3_reranker(scratch / "qwen", tokenizer_dir=default_tokenizer_dir())
    cross = build_cross_encoder(scratch / "cross-encoder")
    common = ["--no-ui", "--dtype", "float32", "--device", "cpu"]
    names = ["--served-model-name", "a", "--served-model-name", "b"]
    runs = {
        "qwen": [],
        "qwen + qwen copy": ["--model", str(qwen), *names],
        "qwen + cross-encoder": ["--model", str(cross), *names],
    }
    for label, extra in runs.items():
        with rerankd_server(qwen, *extra, *common, log_dir=scratch) as server:
            cards = httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"]
            body = {"query": "q", "documents": ["a b", "c"]}
            httpx.post(f"{server.url}/v1/rerank", json=body, timeout=60).raise_for_status()
            server.stop()
        weights = sum(card["weight_bytes"] for card in cards) / 2**20
        rss = (server.maxrss_kib or 0) / 1024
        print(f"{label:22s} peak RSS {rss:7.1f} MiB  weights {weights:6.1f} MiB  ({len(cards)} model(s))")


if __name__ == "__main__":
    main()
