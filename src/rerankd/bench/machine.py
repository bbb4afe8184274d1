"""Facts about this machine and the model that every figure is read against: the CPU, the matrix-multiply
peak per dtype (measured, not looked up), the FLOPs a token costs, and the weights' size on disk."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FLAGS = ("avx512_bf16", "avx512_vnni", "amx", "avx512f", "avx_vnni")  # the ones that decide the dtypes


def machine() -> dict[str, Any]:
    """CPU model, the flags that matter, cores in the affinity mask, load average, Python and torch."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", "").strip()
        info["flags"] = " ".join(f for f in fields.get("Flags", "").split() if f.startswith(_FLAGS))
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = platform.processor()
    info["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["load_before"] = load_average()
    import torch

    info["torch"] = torch.__version__
    return info


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def measure_peaks(threads: int) -> dict[str, float]:
    """Matrix-multiply GFLOP/s (GOP/s for int8) per dtype, with a big square matmul on all threads; the
    reference runs in fp32, so its peak is fp32's."""
    import torch

    torch.set_num_threads(threads)
    n = 2048
    peaks: dict[str, float] = {}

    def timed(fn: Callable[[], object]) -> float:
        fn()
        best = float("inf")
        for _ in range(4):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return 2 * n**3 / best / 1e9

    for name, dt in [("float32", torch.float32), ("bfloat16", torch.bfloat16)]:
        a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
        peaks[name] = timed(functools.partial(torch.matmul, a, b))
    a8 = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    b8 = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    try:
        peaks["int8"] = timed(lambda: torch._int_mm(a8, b8))
    except RuntimeError:
        peaks["int8"] = float("nan")
    peaks["reference"] = peaks["float32"]
    return peaks


def flops_per_token(model_dir: Path) -> float:
    """2 x the parameters outside the embedding (the matrix multiplies every token goes through)."""
    cfg = json.loads((model_dir / "config.json").read_text())
    h, i, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    d = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i
    return 2.0 * n * per_layer


def checkpoint_bytes(model_dir: Path) -> int:
    """The weights' size on disk: the safetensors, or the .bin files of a checkpoint without any (a repo
    shipping both formats holds one set of weights, not two)."""
    sizes = [sum(f.stat().st_size for f in model_dir.glob(p)) for p in ("*.safetensors", "*.bin")]
    return sizes[0] or sizes[1]


@dataclass(frozen=True)
class Limits:
    """What a run is set against: the measured matmul peak per variant, the model's FLOPs per token and
    its weights' size (so peak RSS reads as a multiple of the weights)."""

    peaks: dict[str, float]
    flops_per_token: float
    weights_bytes: int

    @classmethod
    def measure(cls, model_dir: Path, threads: int) -> Limits:
        return cls(measure_peaks(threads), flops_per_token(model_dir), checkpoint_bytes(model_dir))

    def peak_fraction(self, tokens: int, seconds: float, variant: str) -> float:
        """The share of the dtype's matmul peak these tokens/s amount to."""
        return tokens * self.flops_per_token / seconds / 1e9 / self.peaks[variant]

    def rss_over_weights(self, rss_kib: int) -> float:
        return rss_kib * 1024 / self.weights_bytes
