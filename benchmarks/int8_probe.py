"""int8 against bf16 and fp32 on one full-size Qwen3-Reranker-0.6B decoder layer at the scorer's CPU pass
shape [14, 293]: fp32, bf16, rerankd's int8 (rerankd.models.int8: int8 tensors, torch._int_mm) and, when torchao is
installed, torchao's Int8DynamicActivationInt8WeightConfig (fp32 and bf16 activations); the fused
kernels on in all. Interleaved rounds timed by CPU time (steady on a shared machine). Run:
    PYTHONPATH=src python benchmarks/int8_probe.py [--threads 1] [--rounds 4]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from typing import Any

import torch
from transformers import Qwen3Config
from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer, Qwen3RotaryEmbedding

from rerankd.models import kernels
from rerankd.models.precision import quantize_int8
from rerankd.testing.synthetic import QWEN3_RERANKER_0_6B


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = Qwen3Config(**QWEN3_RERANKER_0_6B)
    config._attn_implementation = "sdpa"
    b, s = 14, 293
    pos = torch.arange(s)[None].expand(b, -1)
    mask = torch.ones(s, s, dtype=torch.bool).tril()[None, None].expand(b, 1, -1, -1)
    base = Qwen3DecoderLayer(config, 0).eval()
    x = torch.randn(b, s, config.hidden_size)
    pe = Qwen3RotaryEmbedding(config)(x, pos)
    pe16 = (pe[0].bfloat16(), pe[1].bfloat16())
    variants: dict[str, tuple[Any, torch.Tensor, Any]] = {
        "float32": (base, x, pe),
        "bfloat16": (copy.deepcopy(base).bfloat16(), x.bfloat16(), pe16),
        "int8 rerankd": (quantize_int8(copy.deepcopy(base)), x, pe),
    }
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        m = copy.deepcopy(base)
        quantize_(m, Int8DynamicActivationInt8WeightConfig())
        variants["int8 torchao"] = (m, x, pe)
        mb = copy.deepcopy(base).bfloat16()
        quantize_(mb, Int8DynamicActivationInt8WeightConfig())
        variants["int8 torchao (bf16 act)"] = (mb, x.bfloat16(), pe16)
    except ImportError as e:
        print(f"torchao not measured: {e}")
    for m, _, _ in variants.values():
        kernels.apply_kernels(m, "on")

    def run(k: str) -> torch.Tensor:
        m, xx, emb = variants[k]
        with torch.inference_mode():
            out: torch.Tensor = m(xx, attention_mask=mask, position_ids=pos, position_embeddings=emb)
        return out

    outs = {k: run(k).float() for k in variants}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for k in variants:
            t = time.process_time()
            run(k)
            times[k].append(time.process_time() - t)
    ref = outs["float32"]
    print(f"one layer [{b}, {s}], {torch.get_num_threads()} thread(s), CPU time, load {os.getloadavg()}")
    for k, ts in times.items():
        r = [a / c for a, c in zip(times["float32"], ts, strict=True)]
        rel = ((outs[k] - ref).abs().max() / ref.abs().max()).item()
        print(
            f"  {k:26s} ms median {1e3 * statistics.median(ts):7.1f}  x fp32 {statistics.median(r):.2f} "
            f"({min(r):.2f}-{max(r):.2f})  max rel. error vs fp32 {rel:.1e}"
        )


if __name__ == "__main__":
    main()
