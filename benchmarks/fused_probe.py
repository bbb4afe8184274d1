"""Where bf16 time goes in one full-size Qwen3-Reranker-0.6B decoder layer, and what fusing buys.

One random layer of the 0.6B architecture on workload A's shape (32 pairs x 293 tokens, boolean causal
mask, SDPA), in bf16. Variants, timed interleaved (so machine noise hits each alike), best and median:
  eager     transformers' layer as is
  compiled  rerankd.models.fused.compile_modules (torch.compile of the norms, MLP and RoPE, dynamic
            shapes): what the scorer gets
  compiled-layer  torch.compile of the whole layer (an upper bound: the scorer's prefix cache does not let
            the whole layer compile)
`--profile` prints torch.profiler's top ops for eager and compiled. Run:
    PYTHONPATH=src python benchmarks/fused_probe.py [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from transformers import Qwen3Config
from transformers.models.qwen3 import modeling_qwen3
from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer, Qwen3RotaryEmbedding

from rerankd.models.fused import compile_modules
from rerankd.testing.synthetic import QWEN3_RERANKER_0_6B


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=293)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--skip-layer-compile", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    config = Qwen3Config(**QWEN3_RERANKER_0_6B)
    config._attn_implementation = "sdpa"
    layer = Qwen3DecoderLayer(config, 0).eval().to(torch.bfloat16)
    with torch.no_grad():  # non-trivial norm weights, so a wrong fusion shows in the diff
        for m in layer.modules():
            if hasattr(m, "variance_epsilon"):
                m.weight.uniform_(0.5, 1.5)
    b, s = args.pairs, args.tokens
    x = torch.randn(b, s, config.hidden_size, dtype=torch.bfloat16)
    pos = torch.arange(s)[None].expand(b, -1)
    cos, sin = Qwen3RotaryEmbedding(config)(x, pos)
    mask = torch.ones(s, s, dtype=torch.bool).tril()[None, None].expand(b, 1, -1, -1)

    eager_rope = modeling_qwen3.apply_rotary_pos_emb

    def runner(mod: torch.nn.Module, rope: Callable[..., object]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            modeling_qwen3.apply_rotary_pos_emb = rope  # compile_modules patches it module-wide
            with torch.inference_mode():
                out = mod(x, attention_mask=mask, position_ids=pos, position_embeddings=(cos, sin))
            return out[0] if isinstance(out, tuple) else out

        return run

    compiled = copy.deepcopy(layer)
    compile_modules(compiled)
    compiled_rope = modeling_qwen3.apply_rotary_pos_emb
    variants: dict[str, Callable[[], torch.Tensor]] = {"eager": runner(layer, eager_rope)}
    variants["compiled"] = runner(compiled, compiled_rope)
    if not args.skip_layer_compile:
        whole = torch.compile(copy.deepcopy(layer), dynamic=True)
        variants["compiled-layer"] = runner(whole, eager_rope)
    ref = variants["eager"]().float()
    for name, fn in variants.items():
        t = time.perf_counter()
        out = fn()
        first = time.perf_counter() - t
        diff = (out.float() - ref).abs().max().item() / ref.abs().max().item()
        print(f"{name}: first call {first:.1f} s (compile + run), max |diff| / max |eager| {diff:.1e}")
    times: dict[str, list[float]] = {n: [] for n in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    eager = statistics.median(times["eager"])
    print(f"\none layer, {b} x {s} tokens, bf16, {torch.get_num_threads()} threads, {args.rounds} rounds:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"  {name:15s} best {min(ts) * 1e3:7.1f} ms  median {med * 1e3:7.1f} ms  "
            f"(spread {(max(ts) - min(ts)) / med:.0%})  eager/this {eager / med:.2f}x"
        )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for name in ("eager", "compiled"):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                variants[name]()
            print(f"\n--- {name} ---")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
