"""The fused eager kernels (rerankd.models.kernels) against transformers' eager path, side by side.

One process loads the full-size random Qwen3-Reranker-0.6B once per dtype, then scores workload A
with the kernels applied and reverted in turn, round after round, so machine noise hits both alike.
Prints pairs/s per round, the median ratio fused / eager (and its range), the max score difference
between the two (they round alike: expect 0) and, for bf16, against fp32. `--profile` prints
torch.profiler's top ops for each (dtype, kernels) pair over one scoring of A. Run:
    PYTHONPATH=src python benchmarks/kernels_probe.py [--rounds 3] [--dtypes float32,bfloat16] [--profile]
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
from rerankd.models import kernels
from rerankd.reranker import load_reranker

_clock = time.perf_counter


def _profile(label: str, run: Callable[[], Any], rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    print(f"--- torch.profiler: {label} (self CPU time, top {rows})")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40))


def layer_probe(args: Any) -> None:
    """One random full-size Qwen3-Reranker-0.6B decoder layer on the scorer's CPU pass shape (14 pairs
    x 293 tokens: the 4096-token cap of one forward pass on workload A), kernels on and off, interleaved; cheaper than the whole model, the same per-op costs."""
    import copy

    from transformers import Qwen3Config
    from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer, Qwen3RotaryEmbedding

    from rerankd.testing.synthetic import QWEN3_RERANKER_0_6B

    config = Qwen3Config(**QWEN3_RERANKER_0_6B)
    config._attn_implementation = "sdpa"
    b, s = 14, 293
    pos = torch.arange(s)[None].expand(b, -1)
    mask = torch.ones(s, s, dtype=torch.bool).tril()[None, None].expand(b, 1, -1, -1)
    runs: dict[str, Callable[[], torch.Tensor]] = {}
    for name in args.dtypes.split(","):
        dtype = getattr(torch, name)
        layer = Qwen3DecoderLayer(config, 0).eval().to(dtype)
        with torch.no_grad():
            for m in layer.modules():
                if hasattr(m, "variance_epsilon"):
                    m.weight.uniform_(0.5, 1.5)
        x = torch.randn(b, s, config.hidden_size).to(dtype)
        cos, sin = Qwen3RotaryEmbedding(config)(x, pos)
        fused = copy.deepcopy(layer)
        kernels.apply_kernels(fused, "on")
        for label, mod in (("eager", layer), ("fused", fused)):

            def run(mod: Any = mod, x: Any = x, cos: Any = cos, sin: Any = sin) -> Any:
                with torch.inference_mode():
                    return mod(x, attention_mask=mask, position_ids=pos, position_embeddings=(cos, sin))

            runs[f"{name} {label}"] = run
    outs = {k: f() for k, f in runs.items()}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, f in runs.items():
            t = _clock()
            f()
            times[k].append(_clock() - t)
    print(f"one decoder layer, [{b}, {s}] tokens, {args.rounds} rounds interleaved, load {os.getloadavg()}")
    for k, ts in times.items():
        base = k.split(" ")[0] + " eager"
        ratio = [b_ / a for a, b_ in zip(ts, times[base], strict=True)]
        diff = (outs[k].float() - outs[base].float()).abs().max().item()
        print(
            f"  {k:24s} ms median {1e3 * statistics.median(ts):7.1f} (best {1e3 * min(ts):7.1f})  "
            f"speed-up vs {base}: {statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})  "
            f"max |diff| {diff:.1e}"
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

        for name, on in (("eager", False), ("fused", True)):

            def run(rr: Any = rr, on: bool = on, setter: Any = setter, short: bool = False) -> list[float]:
                setter(on)
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
        base = v.split(" ")[0] + " eager"
        ratio = [a / b for a, b in zip(rs, rates[base], strict=True)]
        diff = max(abs(a - b) for a, b in zip(scores[v], scores[base], strict=True))
        drift = (
            f"  vs fp32 {max(abs(a - b) for a, b in zip(scores[v], fp32, strict=True)):.1e}" if fp32 else ""
        )
        print(
            f"  {v:24s} pairs/s {' '.join(f'{x:.3f}' for x in rs)}  median {statistics.median(rs):.3f}  "
            f"x {base}: {statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})  "
            f"max |diff| vs {base} {diff:.1e}{drift}"
        )
    if args.profile:
        for v, run in variants.items():
            _profile(v, run, args.rows)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
