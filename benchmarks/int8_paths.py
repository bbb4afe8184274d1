"""int8 on plain int8 tensors (rerankd.models.int8, `torch._int_mm`) against the deprecated fbgemm path it
replaced (torch.ao's `quantize_dynamic`: qint8 weights, per-tensor activations), bf16 and fp32, loaded in
ONE process and interleaved round by round on workload A, so each ratio is measured side by side. Also
the drift of each from fp32's scores. (The fbgemm copy uses the full 8-bit activation range, as the
old path did on CPUs with VNNI: compare on such a CPU.) Run:
    PYTHONPATH=src python benchmarks/int8_paths.py --model <0.6B dir> --quick --threads 1 --cpu-time
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from interleaved import interleave  # benchmarks/: the script's own directory
from rerankd.bench.machine import machine
from rerankd.bench.workloads import DEFAULT_MODEL_DIR, ensure_model, make_workloads
from rerankd.config import BatchConfig, ModelConfig
from rerankd.models.int8 import OPS, Int8Linear
from rerankd.reranker import load_reranker


class FbgemmLinear(torch.nn.Module):
    """The path rerankd's int8 ran on before: torch.ao dynamic quantisation, per-channel qint8 weights."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the quantized dtypes' deprecation notices
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
            lin.weight.data = weight
            q = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear: per_channel_dynamic_qconfig})
        self.inner = q[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self.inner._packed_params._packed_params
        return torch.ops.quantized.linear_dynamic(x.float(), packed, reduce_range=False).to(x.dtype)


def _to_fbgemm(module: torch.nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, Int8Linear):
            # The int8 weight dequantised is not the fp32 one: requantise from the fp32 model instead.
            raise TypeError("pass an fp32 model")
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, FbgemmLinear(child.weight.data))
        else:
            _to_fbgemm(child)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: every core)")
    ap.add_argument("--cpu-time", action="store_true", help="time by the process's CPU time")
    args = ap.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    info = machine()
    print(f"machine: {info['cpu']} ({info['cores']} cores; {info['flags']}); torch {info['torch']}")
    model_dir = ensure_model(args.model)
    request = make_workloads(AutoTokenizer.from_pretrained(str(model_dir)), args.quick)["A"][0]
    runs: dict[str, Callable[[], list[float]]] = {}
    for v in ("float32", "bfloat16", "int8", "int8-fbgemm"):
        dtype = "float32" if v == "int8-fbgemm" else v
        rr: Any = load_reranker(ModelConfig(model=str(model_dir), device="cpu", dtype=dtype), BatchConfig())
        if v == "int8-fbgemm":
            _to_fbgemm(rr.scorer.model.base_model)
        runs[v] = lambda rr=rr: rr.score(request["query"], request["documents"])
        runs[v]()  # warm-up (and int8's compile)
    print(f"int8 quantise/rescale: {'inductor-compiled' if OPS.compiled else 'eager'}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = len(request["documents"])
    rates, scores = interleave(runs, args.rounds, pairs, clock)
    unit = "CPU time" if args.cpu_time else "wall time"
    print(
        f"workload A ({pairs} pairs), {args.rounds} rounds interleaved, {unit}, threads {torch.get_num_threads()}"
    )
    for v, rs in rates.items():
        ratio = statistics.median(r / b for r, b in zip(rs, rates["bfloat16"], strict=True))
        old = statistics.median(r / b for r, b in zip(rs, rates["int8-fbgemm"], strict=True))
        drift = max(abs(a - b) for a, b in zip(scores[v], scores["float32"], strict=True))
        print(
            f"  {v:12s} pairs/s median {statistics.median(rs):.3f}  x bf16 {ratio:.2f}  x int8-fbgemm {old:.2f}"
            f"  drift vs fp32 {drift:.1e}"
        )


if __name__ == "__main__":
    main()
