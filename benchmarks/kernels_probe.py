"""The fused eager kernels (rerankd.models.kernels) against transformers' eager path, side by side.

One process loads the full-size random Qwen3-Reranker-0.6B once per dtype, then scores workload A
with the kernels applied and reverted in turn, round after round, so machine noise hits both alike.
Prints pairs/s per round, the median ratio fused / eager (and its range), the max score difference
between the two (they round alike: expect 0) and, for bf16, against fp32. `--malloc` also times the
allocator setting (rerankd.models.kernels.tune_allocator) on and off. `--profile` prints
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


def _profile(label: str, run: Callable[[], Any], rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    print(f"--- torch.profiler: {label} (self CPU time, top {rows})")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--quick", action="store_true", help="A with 8 documents")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rows", type=int, default=14)
    ap.add_argument("--malloc", action="store_true", help="also time the allocator setting on/off")
    args = ap.parse_args()
    os.environ["RERANKD_FUSED"] = "off"  # load eager; the probe applies and reverts the kernels itself
    model_dir = ensure_model(DEFAULT_MODEL_DIR)
    request = make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), args.quick)["A"][0]
    query, docs = request["query"], request["documents"]
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

        configs = [("eager", False, False), ("fused", True, False)]
        if args.malloc:
            configs += [("eager+malloc", False, True), ("fused+malloc", True, True)]
        for name, on, tuned in configs:

            def run(rr: Any = rr, on: bool = on, tuned: bool = tuned, setter: Any = setter) -> list[float]:
                setter(on)
                kernels.tune_allocator(tuned)
                return rr.score(query, docs)

            variants[f"{dtype} {name}"] = run
    for v, run in variants.items():
        t = time.perf_counter()
        run()  # warm-up
        print(f"warm-up {v}: {time.perf_counter() - t:.1f} s")
    rates: dict[str, list[float]] = {v: [] for v in variants}
    scores: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for v, run in variants.items():
            t = time.perf_counter()
            scores[v] = run()
            rates[v].append(len(docs) / (time.perf_counter() - t))
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
