"""The GPU measurement of issue 14, prepared for a session that has a GPU: one script, one JSON.

On the device: the bf16 matmul peak it measures, the model card's algorithm on the GPU (fp32 and bf16,
batches of 8, full logits) and rerankd in bf16 over token budgets, with prefix sharing on and off; each
row's pairs/s, x the bf16 reference, the fraction of the measured bf16 peak, peak GPU memory and the
score drift against the fp32 reference. CUDA graphs are not tried: every batch has another shape.

    PYTHONPATH=src python benchmarks/gpu.py --json benchmarks/results/gpu.json   # the 0.6B architecture
    PYTHONPATH=src python benchmarks/gpu.py --device cpu --model DIR --quick       # a smoke of the script
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from rerankd.bench.machine import flops_per_token
from rerankd.bench.workloads import DEFAULT_MODEL_DIR, ensure_model, make_workloads
from rerankd.config import BatchConfig, ModelConfig
from rerankd.reranker import load_reranker
from rerankd.testing.reference import ReferenceQwen3Reranker


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype, n: int) -> float:
    """GFLOP/s of one n x n x n matmul, best of 5 after a warm-up."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


class DeviceReference(ReferenceQwen3Reranker):
    """The model card's algorithm, unchanged, on `device` in `dtype` (the inputs follow the model)."""

    def __init__(self, model_dir: str, device: str, dtype: torch.dtype) -> None:
        super().__init__(model_dir)
        self.model.to(device=device, dtype=dtype)
        self.device = device

    def process_inputs(self, texts: list[str]) -> Any:
        return super().process_inputs(texts).to(self.device)


def timed(fn: Callable[[], list[list[float]]], device: str) -> tuple[float, list[list[float]], float]:
    """Seconds, scores and peak device memory (GiB; 0 on CPU) of one run after a warm-up run."""
    fn()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    scores = fn()
    sync(device)
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
    return seconds, scores, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="smaller workloads (A: 8 documents)")
    ap.add_argument("--budgets", default="8192,16384,32768", help="rerankd's max_batch_tokens to try")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    device = args.device
    model_dir = ensure_model(args.model)
    requests = make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), args.quick)
    n = 8192 if device.startswith("cuda") else 1024
    gflop_per_token = flops_per_token(model_dir) / 1e9
    info: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "bf16_peak_gflops": matmul_peak(device, torch.bfloat16, n),
        "fp32_peak_gflops": matmul_peak(device, torch.float32, n),
    }
    print(json.dumps(info))
    rows: list[dict[str, Any]] = []
    for name in ("A", "B"):
        reqs = list(requests[name])
        pairs = sum(len(r["documents"]) for r in reqs)
        variants: list[tuple[str, Callable[[], Callable[[], list[list[float]]]]]] = []
        for dt in (torch.float32, torch.bfloat16):

            def make_ref(dt: torch.dtype = dt, reqs: list[Any] = reqs) -> Callable[[], list[list[float]]]:
                ref = DeviceReference(str(model_dir), device, dt)
                return lambda: [ref.score(r["query"], r["documents"]) for r in reqs]

            variants.append((f"reference-{str(dt).removeprefix('torch.')}", make_ref))
        for budget in [int(b) for b in args.budgets.split(",")]:
            for share in (True, False):

                def make_rr(
                    budget: int = budget, share: bool = share, reqs: list[Any] = reqs
                ) -> Callable[[], list[list[float]]]:
                    config = ModelConfig(model=str(model_dir), device=device, dtype="bfloat16")
                    rr = load_reranker(config, BatchConfig(max_batch_tokens=budget))
                    rr.scorer.share_prefix = share and rr.scorer.share_prefix  # type: ignore[attr-defined]
                    return lambda: [rr.score(r["query"], r["documents"]) for r in reqs]

                variants.append((f"rerankd-bf16-{budget}{'' if share else '-noprefix'}", make_rr))
        base: list[list[float]] | None = None
        counter = ReferenceQwen3Reranker(str(model_dir))
        tokens = sum(counter.count_tokens(r["query"], r["documents"]) for r in reqs)
        del counter
        for label, make in variants:
            run = make()
            seconds, scores, peak = timed(run, device)
            base = base or scores  # the first row is the fp32 reference
            drift = max(
                abs(a - b) for s, t in zip(scores, base, strict=True) for a, b in zip(s, t, strict=True)
            )
            row = {
                "workload": name,
                "variant": label,
                "pairs": pairs,
                "tokens": tokens,
                "seconds": round(seconds, 4),
                "pairs_per_s": round(pairs / seconds, 2),
                "pct_bf16_peak": round(
                    100 * tokens * gflop_per_token / seconds / info["bf16_peak_gflops"], 1
                ),
                "peak_gib": round(peak, 2),
                "max_diff_vs_fp32_ref": drift,
            }
            rows.append(row)
            print(json.dumps(row))
            del run
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    for name in ("A", "B"):
        ref = next(r for r in rows if r["workload"] == name and r["variant"] == "reference-bfloat16")
        for r in rows:
            if r["workload"] == name:
                r["x_bf16_ref"] = round(r["pairs_per_s"] / ref["pairs_per_s"], 2)
    print("\n| workload | variant | pairs/s | x bf16 ref | % bf16 peak | peak GiB | max diff vs fp32 ref |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for r in rows:
        print(
            f"| {r['workload']} | {r['variant']} | {r['pairs_per_s']} | {r['x_bf16_ref']} | {r['pct_bf16_peak']}% "
            f"| {r['peak_gib']} | {r['max_diff_vs_fp32_ref']:.1e} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
