"""The fused eager kernels (rerankd.models.kernels) against transformers' eager path, side by side.

One process loads the full-size random Qwen3-Reranker-0.6B once per dtype, then scores workload A
in three states in turn, round after round, so machine noise hits all alike: `eager` (transformers'
code), `fused-sdpa` (the kernels, attention still transformers' SDPA) and `fused` (the kernels with
the chunked causal attention of rerankd.models.attention). Prints pairs/s per round, the median ratios
(and their range) against eager and against fused-sdpa, the max score differences and, for bf16, the
drift from fp32. `--layer` times one full-size decoder layer instead, `--attention` the attention call
alone, both at the scorer's pass shapes (`--shape prefix|padded`). `--profile` prints torch.profiler's
top ops for each. Run:
    PYTHONPATH=src python benchmarks/kernels_probe.py [--rounds 3] [--dtypes float32,bfloat16] [--profile]
    PYTHONPATH=src python benchmarks/kernels_probe.py --attention --shape padded --threads 1 --cpu-time
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import AutoTokenizer

from rerankd.bench.workloads import DEFAULT_MODEL_DIR, ensure_model, make_workloads
from rerankd.config import BatchConfig, ModelConfig
from rerankd.models import attention, kernels
from rerankd.reranker import load_reranker

_clock = time.perf_counter


def _interleaved(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Each run's seconds per round, the runs taken in turn every round (a burst of load hits all alike)."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, f in runs.items():
            t = _clock()
            f()
            times[k].append(_clock() - t)
    return times


def _profile(label: str, run: Callable[[], Any], rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    print(f"--- torch.profiler: {label} (self CPU time, top {rows})")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40))


# The kernels with attention handed back to transformers' SDPA (the state before models/attention.py):
# the chunked path only takes passes with at least `MIN_KEYS` keys.
_NO_CHUNKS = 1 << 30


def _attention_mode(name: str) -> None:
    attention.MIN_KEYS = _NO_CHUNKS if name == "fused-sdpa" else _DEFAULT_MIN_KEYS


_DEFAULT_MIN_KEYS = attention.MIN_KEYS
VARIANTS = ("eager", "fused-sdpa", "fused")


def _shape(config: Any, shape: str, dtype: torch.dtype) -> dict[str, Any]:
    """The scorer's CPU pass shapes on workload A (real tokenizer): `prefix`, the shared-prefix suffix
    pass (13 pairs x 300 suffix tokens after a 71-token shared prefix: every pair of A is 371 tokens);
    `padded`, a plain pass of 14 rows of 293 down to 254 tokens, right-padded (transformers' 4-D mask)."""
    from rerankd.models.prefix import PrefixKV

    kv, dim = config.num_key_value_heads, config.head_dim
    if shape == "prefix":
        b, s, pw = 13, 300, 71
        cache = PrefixKV()
        cache.keys = [torch.randn(1, pw, kv, dim).to(dtype).transpose(1, 2)]
        cache.values = [torch.randn(1, pw, kv, dim).to(dtype).transpose(1, 2)]
        cache.recording = False
        pos = (pw + torch.arange(s))[None].expand(b, -1)
        mask = (torch.arange(pw + s)[None, :] <= pw + torch.arange(s)[:, None])[None, None].expand(
            b, 1, -1, -1
        )
        return {"b": b, "s": s, "pos": pos, "mask": mask, "cache": cache}
    b, s = 14, 293
    lengths = torch.tensor([s - 3 * i for i in range(b)])
    mask = (
        torch.ones(s, s, dtype=torch.bool).tril()[None, None]
        & (torch.arange(s) < lengths[:, None])[:, None, None]
    )
    return {
        "b": b,
        "s": s,
        "pos": torch.arange(s)[None].expand(b, -1),
        "mask": mask,
        "cache": None,
        "lengths": lengths,
    }


def layer_probe(args: Any) -> None:
    """One random full-size Qwen3-Reranker-0.6B decoder layer on the scorer's CPU pass shape (`--shape`),
    eager, fused with transformers' attention, fused with the chunked attention, interleaved; cheaper
    than the whole model, the same per-op costs."""
    import copy

    from transformers import Qwen3Config
    from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer, Qwen3RotaryEmbedding

    from rerankd.testing.synthetic import QWEN3_RERANKER_0_6B

    config = Qwen3Config(**QWEN3_RERANKER_0_6B)
    config._attn_implementation = "sdpa"
    runs: dict[str, Callable[[], torch.Tensor]] = {}
    valid: torch.Tensor | None = None
    for name in args.dtypes.split(","):
        dtype = getattr(torch, name)
        sh = _shape(config, args.shape, dtype)
        b, s, pos = sh["b"], sh["s"], sh["pos"]
        if "lengths" in sh:
            valid = torch.arange(s)[None, :] < sh["lengths"][:, None]
        layer = Qwen3DecoderLayer(config, 0).eval().to(dtype)
        with torch.no_grad():
            for m in layer.modules():
                if hasattr(m, "variance_epsilon"):
                    m.weight.uniform_(0.5, 1.5)
        x = torch.randn(b, s, config.hidden_size).to(dtype)
        cos, sin = Qwen3RotaryEmbedding(config)(x, pos)
        fused = copy.deepcopy(layer)
        kernels.apply_kernels(fused, "on")
        for label in VARIANTS:
            mod = layer if label == "eager" else fused

            def run(
                mod: Any = mod, x: Any = x, cos: Any = cos, sin: Any = sin, label: str = label, sh: Any = sh
            ) -> Any:
                mask, pos, cache = sh["mask"], sh["pos"], sh["cache"]
                _attention_mode(label)
                with torch.inference_mode():
                    return mod(
                        x, attention_mask=mask, position_ids=pos, position_embeddings=(cos, sin), cache=cache
                    )

            runs[f"{name} {label}"] = run
    outs = {k: f() for k, f in runs.items()}
    times = _interleaved(runs, args.rounds)
    print(f"one decoder layer, {args.shape} pass, {args.rounds} rounds interleaved, load {os.getloadavg()}")
    for k, ts in times.items():
        dt = k.split(" ")[0]
        line = f"  {k:24s} ms median {1e3 * statistics.median(ts):7.1f} (best {1e3 * min(ts):7.1f})"
        for base in (f"{dt} eager", f"{dt} fused-sdpa"):
            ratio = [b_ / a for a, b_ in zip(ts, times[base], strict=True)]
            d = outs[k].float() - outs[base].float()
            d = d[valid] if valid is not None else d  # padded rows' outputs are never read
            line += (
                f"  x {base.split(' ')[1]}: {statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})"
                f" |diff| {d.abs().max().item():.1e}"
            )
        print(line)
    if args.profile:
        for k, f in runs.items():
            _profile(k, f, args.rows)
    _attention_mode("fused")


def attention_probe(args: Any) -> None:
    """The attention call alone (after the projections, RoPE and the prefix's keys), transformers' SDPA
    path (`repeat_kv` under a mask, one flash call over every key) against the chunked one, at the
    layer's `--shape`, interleaved."""
    from transformers import Qwen3Config
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from rerankd.testing.synthetic import QWEN3_RERANKER_0_6B

    config = Qwen3Config(**QWEN3_RERANKER_0_6B)
    heads, kv, dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim

    class Heads(torch.nn.Module):
        num_key_value_groups = heads // kv
        is_causal = True

    module = Heads()
    runs: dict[str, Callable[[], torch.Tensor]] = {}
    valid: torch.Tensor | None = None
    for name in args.dtypes.split(","):
        dtype = getattr(torch, name)
        sh = _shape(config, args.shape, dtype)
        b, s, mask, cache = sh["b"], sh["s"], sh["mask"], sh["cache"]
        if "lengths" in sh:
            valid = torch.arange(s)[None, :] < sh["lengths"][:, None]
        q = torch.randn(b, s, heads, dim).to(dtype).transpose(1, 2)
        k = torch.randn(b, s, kv, dim).to(dtype).transpose(1, 2)
        v = torch.randn(b, s, kv, dim).to(dtype).transpose(1, 2)

        def kv_(k: Any = k, v: Any = v, cache: Any = cache) -> tuple[torch.Tensor, torch.Tensor]:
            return cache.update(k, v, 0) if cache is not None else (k, v)  # the prefix's keys prepended

        for label, fn in (("transformers", sdpa_attention_forward), ("chunked", attention.sdpa_attention)):

            def run(fn: Any = fn, q: Any = q, kv_: Any = kv_, mask: Any = mask) -> Any:
                with torch.inference_mode():
                    key, value = kv_()
                    return fn(module, q, key, value, mask, scaling=dim**-0.5)[0]

            runs[f"{name} {label}"] = run
    outs = {k: f() for k, f in runs.items()}
    times = _interleaved(runs, args.rounds)
    print(
        f"attention of one layer, {args.shape} pass, {args.rounds} rounds interleaved, load {os.getloadavg()}"
    )
    for k, ts in times.items():
        base = k.split(" ")[0] + " transformers"
        ratio = [b_ / a for a, b_ in zip(ts, times[base], strict=True)]
        d = outs[k].float() - outs[base].float()
        d = d[valid] if valid is not None else d
        print(
            f"  {k:24s} ms median {1e3 * statistics.median(ts):7.1f} ({1e3 * min(ts):.1f}-{1e3 * max(ts):.1f})"
            f"  speed-up: {statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})"
            f"  max |diff| {d.abs().max().item():.1e}"
        )
    if args.profile:
        for k, f in runs.items():
            _profile(k, f, args.rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--quick", action="store_true", help="A with 8 documents")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rows", type=int, default=14)
    ap.add_argument("--docs", type=int, default=0, help="score only the first N documents of A")
    ap.add_argument("--layer", action="store_true", help="one full-size decoder layer instead of the model")
    ap.add_argument("--attention", action="store_true", help="the attention call alone, at --shape")
    ap.add_argument(
        "--shape", choices=("prefix", "padded"), default="prefix", help="--layer/--attention pass"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: the loader's choice)")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by this process's CPU time, not wall time (steadier on a machine shared with other jobs; "
        "use with --threads 1, where no thread waits on another)",
    )
    args = ap.parse_args()
    global _clock
    _clock = time.process_time if args.cpu_time else time.perf_counter
    if args.threads:
        os.environ["RERANKD_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    if args.attention:
        return attention_probe(args)
    if args.layer:
        return layer_probe(args)
    os.environ["RERANKD_FUSED"] = "off"  # load eager; the probe applies and reverts the kernels itself
    model_dir = ensure_model(DEFAULT_MODEL_DIR)
    request = make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), args.quick)["A"][0]
    query, docs = request["query"], request["documents"][: args.docs or None]
    variants: dict[str, Callable[[], list[float]]] = {}
    for dtype in args.dtypes.split(","):
        rr = load_reranker(ModelConfig(model=str(model_dir), device="cpu", dtype=dtype), BatchConfig())
        model = rr.scorer.model  # type: ignore[attr-defined]
        state: dict[str, Any] = {"patch": None}

        def setter(on: bool, model: Any = model, state: dict[str, Any] = state) -> None:
            if on and state["patch"] is None:
                state["patch"] = kernels.apply_kernels(model, "on")
            elif not on and state["patch"] is not None:
                state["patch"].revert()
                state["patch"] = None

        for name in VARIANTS:

            def run(rr: Any = rr, name: str = name, setter: Any = setter, short: bool = False) -> list[float]:
                setter(name != "eager")
                _attention_mode(name)
                return rr.score(query, docs[:2] if short else docs)

            variants[f"{dtype} {name}"] = run
    for v, run in variants.items():
        t = _clock()
        run(short=True)  # warm-up: kernels and allocator set, first-call costs paid
        print(f"warm-up {v}: {_clock() - t:.1f} s", flush=True)
    rates: dict[str, list[float]] = {v: [] for v in variants}
    scores: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for v, run in variants.items():
            t = _clock()
            scores[v] = run()
            rates[v].append(len(docs) / (_clock() - t))
        print(f"round {r + 1}: " + "  ".join(f"{v} {rs[-1]:.3f}" for v, rs in rates.items()), flush=True)
    print(
        f"workload A ({len(docs)} pairs), {args.rounds} rounds interleaved in one process, load {os.getloadavg()}"
    )
    fp32 = next((scores[v] for v in scores if v.startswith("float32 eager")), None)
    for v, rs in rates.items():
        line = f"  {v:24s} pairs/s {' '.join(f'{x:.3f}' for x in rs)}  median {statistics.median(rs):.3f}"
        for base in (v.split(" ")[0] + " eager", v.split(" ")[0] + " fused-sdpa"):
            ratio = [a / b for a, b in zip(rs, rates[base], strict=True)]
            diff = max(abs(a - b) for a, b in zip(scores[v], scores[base], strict=True))
            line += (
                f"  x {base.split(' ')[1]}: {statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})"
                f" |diff| {diff:.1e}"
            )
        if fp32:
            line += f"  vs fp32 eager {max(abs(a - b) for a, b in zip(scores[v], fp32, strict=True)):.1e}"
        print(line)
    if args.profile:
        for v, run in variants.items():
            _profile(v, run, args.rows)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
