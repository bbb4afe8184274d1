"""bf16 linear layers with oneDNN-prepacked weights (rerankd.models.linear) against eager F.linear.

Three probes, each side by side in one process, rounds interleaved so machine noise hits both alike:
  --gemm   the 0.6B's linear shapes alone (M rows x (in -> out)), F.linear vs the packed op;
  --layer  one full-size Qwen3 decoder layer (the fused kernels on) on the scorer's pass shape;
  default  the whole random Qwen3-Reranker-0.6B in bf16 on workload A, packed and unpacked in turn.
Prints medians and the ratio packed / eager, the max difference between the two (expect 0: the same
oneDNN kernel) and, for the model, the process's peak RSS against the fp32 weights. Run:
    PYTHONPATH=src python benchmarks/linear_probe.py --gemm --threads 1 --cpu-time
    PYTHONPATH=src python benchmarks/linear_probe.py --layer --rounds 5 --threads 1 --cpu-time
    PYTHONPATH=src python benchmarks/linear_probe.py --docs 16 --rounds 3 --threads 1 --cpu-time \
        [--model /work/models/qwen3-reranker-0.6b-random]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rerankd.models import linear

_clock = time.perf_counter
SHAPES = [(1024, 2048), (1024, 1024), (2048, 1024), (1024, 3072), (3072, 1024)]  # q, k/v, o, gate/up, down


def _interleave(runs: dict[str, Callable[[], Any]], rounds: int, repeat: int = 1) -> dict[str, list[float]]:
    for f in runs.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, f in runs.items():
            t = _clock()
            for _ in range(repeat):
                f()
            times[k].append((_clock() - t) / repeat)
    return times


def _ratio(ts: list[float], base: list[float]) -> str:
    r = [b / a for a, b in zip(ts, base, strict=True)]
    return f"{statistics.median(r):.3f} ({min(r):.2f}-{max(r):.2f})"


def gemm_probe(args: Any) -> None:
    print(f"GEMMs alone, bf16, {args.rounds} rounds interleaved, load {os.getloadavg()}")
    for m in (int(x) for x in args.rows.split(",")):
        for k, n in SHAPES:
            w, x = torch.randn(n, k).bfloat16(), torch.randn(m, k).bfloat16()
            packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
            runs = {
                "eager": lambda x=x, w=w: F.linear(x, w),
                "packed": lambda x=x, p=packed: torch.ops.mkldnn._linear_pointwise(
                    x, p, None, "none", [], ""
                ),
            }
            ts = _interleave(runs, args.rounds, repeat=3)
            diff = (runs["packed"]().float() - runs["eager"]().float()).abs().max().item()
            gf = {v: 2 * m * k * n / statistics.median(t) / 1e9 for v, t in ts.items()}
            print(
                f"  M {m:5d} {k:4d}->{n:4d}: eager {gf['eager']:4.0f} GFLOP/s, packed {gf['packed']:4.0f} "
                f"GFLOP/s, packed x eager {_ratio(ts['packed'], ts['eager'])}, max |diff| {diff:.0e}"
            )


def layer_probe(args: Any) -> None:
    """One full-size decoder layer, [14, 293] tokens (the 4096-token cap of one CPU pass on A)."""
    import copy

    from transformers import Qwen3Config
    from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer, Qwen3RotaryEmbedding

    from rerankd.models import kernels
    from rerankd.testing.synthetic import QWEN3_RERANKER_0_6B

    config = Qwen3Config(**QWEN3_RERANKER_0_6B)
    config._attn_implementation = "sdpa"
    b, s = 14, 293
    pos = torch.arange(s)[None].expand(b, -1)
    mask = torch.ones(s, s, dtype=torch.bool).tril()[None, None].expand(b, 1, -1, -1)
    layer = Qwen3DecoderLayer(config, 0).eval().bfloat16()
    kernels.apply_kernels(layer, "on")
    x = torch.randn(b, s, config.hidden_size).bfloat16()
    cos, sin = Qwen3RotaryEmbedding(config)(x, pos)
    packed = copy.deepcopy(layer)
    result = linear.pack_linear_weights(packed, "on")
    runs: dict[str, Callable[[], torch.Tensor]] = {}
    for label, mod in (("eager", layer), ("packed", packed)):

        def run(mod: Any = mod) -> Any:
            with torch.inference_mode():
                return mod(x, attention_mask=mask, position_ids=pos, position_embeddings=(cos, sin))

        runs[label] = run
    ts = _interleave(runs, args.rounds)
    diff = (runs["packed"]().float() - runs["eager"]().float()).abs().max().item()
    print(
        f"one bf16 decoder layer, [{b}, {s}] tokens, {result.packed} linears packed, load {os.getloadavg()}"
    )
    for k, t in ts.items():
        print(f"  {k:7s} ms median {1e3 * statistics.median(t):7.1f}  x eager {_ratio(t, ts['eager'])}")
    print(f"  max |diff| packed vs eager {diff:.1e}")


def model_probe(args: Any) -> None:
    from transformers import AutoTokenizer

    from rerankd.bench.workloads import DEFAULT_MODEL_DIR, ensure_model, make_workloads
    from rerankd.config import BatchConfig, ModelConfig
    from rerankd.reranker import load_reranker

    os.environ["RERANKD_PACK"] = "off"  # load plain; the probe packs and reverts itself
    model_dir = ensure_model(Path(args.model)) if args.model else ensure_model(DEFAULT_MODEL_DIR)
    fp32_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    request = make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), False)["A"][0]
    query, docs = request["query"], request["documents"][: args.docs or None]
    rr = load_reranker(ModelConfig(model=str(model_dir), device="cpu", dtype="bfloat16"), BatchConfig())
    model = rr.scorer.model  # type: ignore[attr-defined]
    state: dict[str, Any] = {"pack": None}

    def variant(on: bool) -> Callable[[], list[float]]:
        def run() -> list[float]:
            if on and state["pack"] is None:
                state["pack"] = linear.pack_linear_weights(model, "on")
            elif not on and state["pack"] is not None:
                state["pack"].revert()
                state["pack"] = None
            return rr.score(query, docs)

        return run

    runs = {"eager": variant(False), "packed": variant(True)}
    scores = {k: f() for k, f in runs.items()}  # warm-up, and the scores compared
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):
        for k, f in runs.items():
            t = _clock()
            f()
            rates[k].append(len(docs) / (_clock() - t))
        print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:.3f}" for k, v in rates.items()), flush=True)
    diff = max(abs(a - b) for a, b in zip(scores["packed"], scores["eager"], strict=True))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"workload A ({len(docs)} pairs), bf16, {args.rounds} rounds interleaved, load {os.getloadavg()}")
    for k, rs in rates.items():
        r = [a / b for a, b in zip(rs, rates["eager"], strict=True)]
        print(
            f"  {k:7s} pairs/s {' '.join(f'{x:.3f}' for x in rs)}  median {statistics.median(rs):.3f}  "
            f"x eager {statistics.median(r):.3f} ({min(r):.2f}-{max(r):.2f})"
        )
    print(f"  max |score diff| packed vs eager {diff:.1e}")
    print(f"  peak RSS {rss / 2**30:.2f} GiB = {rss / fp32_bytes:.2f}x the fp32 weights file")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gemm", action="store_true")
    ap.add_argument("--layer", action="store_true")
    ap.add_argument("--rows", default="512,2048,4096", help="--gemm: the M values")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--docs", type=int, default=16, help="score the first N documents of A (0: all)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument(
        "--model", default="", help="the random full-size model's directory (default: the bench's)"
    )
    ap.add_argument("--cpu-time", action="store_true", help="time by the process's CPU time")
    args = ap.parse_args()
    global _clock
    _clock = time.process_time if args.cpu_time else time.perf_counter
    if args.threads:
        os.environ["RERANKD_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    if args.gemm:
        return gemm_probe(args)
    if args.layer:
        return layer_probe(args)
    return model_probe(args)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
