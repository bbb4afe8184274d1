"""bf16 linear layers with oneDNN-prepacked weights (rerankd.models.linear) on real tiny models: the
packed Qwen3 scores bit-equal to the plain one (same oneDNN kernel), fp32 / int8 / a cross-encoder with
biased linears are left untouched, the switches work, the real server packs and serves the same scores,
and the packed copy replaces the plain weight (peak RSS of a load + scoring does not grow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from rerankd.models import linear
from rerankd.models.base import score_encoded
from rerankd.models.linear import PackedLinear
from rerankd.models.loading import load_scorer
from rerankd.testing.servers import rerankd_server

pytestmark = pytest.mark.skipif(not linear.supported(), reason="oneDNN bf16 linear not available here")

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Bananas are yellow and rich in potassium.",
    "The Eiffel tower stands in Paris, on the Champ de Mars.",
    "Berlin is the capital of Germany.",
]


def _scores(scorer: Any) -> list[float]:
    return score_encoded(scorer, [scorer.encode(QUERY, d) for d in DOCS], max_batch_tokens=4096)


def _packed(model: torch.nn.Module) -> int:
    return sum(isinstance(m, PackedLinear) for m in model.modules())


def _load(model_dir: Path, dtype: str, monkeypatch: pytest.MonkeyPatch, pack: str) -> Any:
    monkeypatch.setenv("RERANKD_PACK", pack)
    return load_scorer(str(model_dir), device="cpu", dtype=dtype)


def test_packed_bf16_scores_equal_plain(qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _load(qwen3_dir, "bfloat16", monkeypatch, "off")
    packed = _load(qwen3_dir, "bfloat16", monkeypatch, "auto")
    layers = packed.model.config.num_hidden_layers
    assert _packed(plain.model) == 0
    assert _packed(packed.model) == 7 * layers  # q, k, v, o, gate, up, down in every layer
    # The LM head (the yes/no rows are read from it) and the embeddings stay plain.
    assert type(packed.model.get_output_embeddings()) is torch.nn.Linear
    exact = _scores(_load(qwen3_dir, "float32", monkeypatch, "off"))
    assert max(exact) - min(exact) > 0.05  # documents score apart: a wrong GEMM would show
    ours, theirs = _scores(packed), _scores(plain)
    assert ours == theirs  # same oneDNN kernel, exact reorder: bit-equal
    # bf16's own drift from fp32 on this random tiny model (the same with or without packing).
    assert max(abs(a - b) for a, b in zip(ours, exact, strict=True)) < 0.1
    # The model's size is reported the same (packed tensors have no storage to ask).
    assert abs(packed.info.weight_bytes - plain.info.weight_bytes) < 0.01 * plain.info.weight_bytes


def test_revert_restores_plain_linears(qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = _load(qwen3_dir, "bfloat16", monkeypatch, "off")
    before = _scores(scorer)
    result = linear.pack_linear_weights(scorer.model, "on")
    assert result.applied and result.packed == _packed(scorer.model) > 0
    assert _scores(scorer) == before
    result.revert()
    assert _packed(scorer.model) == 0 and _scores(scorer) == before
    # What maybe_compile does first (inductor cannot trace the opaque packed tensors).
    n = linear.pack_linear_weights(scorer.model, "on").packed
    assert linear.unpack_linear_weights(scorer.model) == n and _packed(scorer.model) == 0
    assert _scores(scorer) == before


def test_fp32_int8_untouched(qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fp32_on = _load(qwen3_dir, "float32", monkeypatch, "on")
    fp32_off = _load(qwen3_dir, "float32", monkeypatch, "off")
    assert _packed(fp32_on.model) == 0  # MKL's packed sgemm: no faster, and keeps the plain weight too
    assert _scores(fp32_on) == _scores(fp32_off)
    assert _packed(_load(qwen3_dir, "int8", monkeypatch, "on").model) == 0


def test_cross_encoder_with_biases_untouched(
    cross_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on = _load(cross_encoder_dir, "bfloat16", monkeypatch, "on")
    off = _load(cross_encoder_dir, "bfloat16", monkeypatch, "off")
    assert _packed(on.model) == 0  # every linear of the BERT-style model has a bias: left to F.linear
    assert _scores(on) == _scores(off)


def test_switches(qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANKD_FUSED", "off")  # transformers' untouched path: no packing either
    assert _packed(_load(qwen3_dir, "bfloat16", monkeypatch, "auto").model) == 0
    monkeypatch.delenv("RERANKD_FUSED")
    with pytest.raises(ValueError, match="RERANKD_PACK"):
        linear.pack_linear_weights(torch.nn.Linear(4, 4), "sometimes")
    layer = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False)).bfloat16()
    assert not linear.pack_linear_weights(layer, "off").applied
    assert linear.pack_linear_weights(layer, "on").packed == 1


def test_server_packs_and_serves_same_scores(
    qwen3_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    library = _scores(_load(qwen3_dir, "bfloat16", monkeypatch, "auto"))
    args = ("--dtype", "bfloat16", "--no-ui")
    with rerankd_server(qwen3_dir, *args, log_dir=tmp_path, env={"RERANKD_PACK": "auto"}) as server:
        r = httpx.post(
            f"{server.url}/v1/rerank", json={"query": QUERY, "documents": DOCS, "return_documents": False}
        )
        assert r.status_code == 200, r.text
        log = server.log_path.read_text()
    by_index = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
    layers = json.loads((qwen3_dir / "config.json").read_text())["num_hidden_layers"]
    assert f"prepacked {7 * layers} bf16 linear layers" in log
    # The server reports probabilities; the library helper above gives logits: compare their order.
    assert sorted(by_index, key=lambda i: -by_index[i]) == sorted(range(len(DOCS)), key=lambda i: -library[i])


_RSS_CHILD = """
import os, resource, sys
os.environ["RERANKD_PACK"] = sys.argv[2]
from rerankd.models.loading import load_scorer
from rerankd.models.base import score_encoded
s = load_scorer(sys.argv[1], device="cpu", dtype="bfloat16")
score_encoded(s, [s.encode("query " * 40, "document " * 200) for _ in range(4)], max_batch_tokens=4096)
from rerankd.models.linear import PackedLinear
n = sum(isinstance(m, PackedLinear) for m in s.model.modules())
keep = []
if len(sys.argv) > 3:  # the failure this test is for: plain weights kept beside the packed ones
    keep = [m.weight.to_dense() for m in s.model.modules() if isinstance(m, PackedLinear)]
import gc
gc.collect()
rss = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS:"))
print(n, rss * 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_packing_keeps_no_second_copy(tmp_path: Path, tokenizer_dir: Path | None) -> None:
    """A model whose weights are mostly linears (100 MiB of them in bf16), loaded and scored in a fresh
    process with and without packing: a kept plain copy would add those 100 MiB to the peak."""
    from rerankd.testing.synthetic import MID_QWEN3, build_qwen3_reranker

    sizes = dict(MID_QWEN3, intermediate_size=8192, num_hidden_layers=8)
    model = build_qwen3_reranker(tmp_path / "wide", tokenizer_dir=tokenizer_dir, sizes=sizes)
    h, i, n = sizes["hidden_size"], sizes["intermediate_size"], sizes["num_hidden_layers"]
    q = sizes["num_attention_heads"] * sizes["head_dim"]
    kv = sizes["num_key_value_heads"] * sizes["head_dim"]
    linear_bytes = 2 * n * (2 * h * q + 2 * h * kv + 3 * h * i)  # bf16

    def rss(*args: str) -> tuple[int, int, int]:
        out = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, str(model), *args], capture_output=True, text=True, check=True
        ).stdout.split()
        return int(out[-3]), int(out[-2]), int(out[-1])

    (n_off, now_off, peak_off), (n_on, now_on, peak_on) = rss("off"), rss("on")
    assert n_off == 0 and n_on == 7 * n
    assert linear_bytes > 90 * 2**20
    mib = (now_on / 2**20, now_off / 2**20, peak_on / 2**20, peak_off / 2**20, linear_bytes / 2**20)
    # Resident after load + scoring (the peak itself is the load's fp32 -> bf16 conversion, in both);
    # without the loader's malloc_trim glibc kept the freed plain weights resident: +94 of 99 MiB.
    assert now_on - now_off < 0.25 * linear_bytes, mib
    assert peak_on - peak_off < 0.25 * linear_bytes, mib
    # The measure sees a kept copy: the same child holding the plain weights beside the packed ones.
    _, now_kept, _ = rss("on", "keep")
    assert now_kept - now_off > 0.75 * linear_bytes, (now_kept / 2**20, *mib)
