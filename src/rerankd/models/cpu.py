"""What this CPU can do fast, and the dtype `dtype="auto"` picks from it.

On a CPU with AMX (Sapphire Rapids and later) oneDNN multiplies bf16 ~9x faster than MKL's fp32; with
avx512_bf16 alone (e.g. AMD Zen 4) bf16 is ~1.6-2x fp32; without either, bf16 is emulated and runs at
about half fp32's speed. bf16's score drift on Qwen3-Reranker stays below 0.01 of fp32. So `auto` takes
bf16 where the hardware has AMX, or where a one-off GEMM timing shows bf16 beating fp32 by a clear
margin, and fp32 (exact) otherwise; always bf16 on CUDA.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

# The flags that decide which matmul kernels exist (amx_* on Intel since Sapphire Rapids; avx512_bf16
# on Cooper Lake, Sapphire Rapids and Zen 4; VNNI for int8 dot products).
FEATURES = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f")
_BF16_MARGIN = 1.2  # bf16 must beat fp32 by this factor in the timing to be picked without AMX
_PROBE_N = 512  # GEMM side for the probe: ~0.27 GFLOP, a few ms on any CPU


def read_cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's flags from /proc/cpuinfo (empty where there is none: macOS, Windows)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class CpuFeatures:
    """The flags that matter, and torch's own reading of the CPU (its vectorised kernels' level)."""

    flags: frozenset[str]
    torch_capability: str

    @classmethod
    def detect(cls) -> CpuFeatures:
        return _detected()

    @property
    def amx(self) -> bool:
        return "amx_bf16" in self.flags and "amx_tile" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def vnni(self) -> bool:
        return "avx512_vnni" in self.flags or "avx_vnni" in self.flags

    def summary(self) -> str:
        """One line for logs and `rerankd bench`: 'AMX yes, avx512_bf16 yes, VNNI yes (torch: AVX512)'."""

        def yn(v: bool) -> str:
            return "yes" if v else "no"

        return (
            f"AMX {yn(self.amx)}, avx512_bf16 {yn(self.avx512_bf16)}, VNNI {yn(self.vnni)} "
            f"(torch kernels: {self.torch_capability})"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "amx": self.amx,
            "avx512_bf16": self.avx512_bf16,
            "vnni": self.vnni,
            "flags": sorted(f for f in self.flags if f in FEATURES),
            "torch_capability": self.torch_capability,
        }


@functools.cache
def _detected() -> CpuFeatures:
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        capability = "unknown"
    return CpuFeatures(read_cpu_flags(), capability)


def _gemm_seconds(dtype: torch.dtype, n: int = _PROBE_N, repeats: int = 5) -> float:
    """Best-of time for one n x n matmul in `dtype` (after one warm-up, which also loads the kernel)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return best


@functools.cache
def bf16_speedup() -> float:
    """fp32 time / bf16 time of one small GEMM, measured once per process (~10 ms in all)."""
    return _gemm_seconds(torch.float32) / _gemm_seconds(torch.bfloat16)


def pick_dtype(
    device: torch.device | str,
    features: CpuFeatures | None = None,
    speedup: Callable[[], float] = bf16_speedup,
) -> tuple[str, str]:
    """`dtype="auto"`: (dtype name, why). $RERANKD_AUTO_DTYPE=float32|bfloat16 overrides the choice."""
    forced = os.environ.get("RERANKD_AUTO_DTYPE", "")
    if forced in ("float32", "bfloat16"):
        return forced, f"$RERANKD_AUTO_DTYPE={forced}"
    if torch.device(device).type == "cuda":
        return "bfloat16", "CUDA: bf16 tensor cores (the yes/no logits stay fp32)"
    if torch.device(device).type != "cpu":
        return "float32", f"{torch.device(device).type}: no measured bf16 path, fp32"
    feats = features or CpuFeatures.detect()
    if feats.amx:
        return "bfloat16", "CPU has AMX (amx_bf16): bf16 matmuls run on the tile unit, ~9x fp32"
    ratio = speedup()
    if ratio >= _BF16_MARGIN:
        return "bfloat16", f"bf16 GEMM measured {ratio:.1f}x fp32 on this CPU (no AMX)"
    native = "native avx512_bf16" if feats.avx512_bf16 else "no native bf16"
    return "float32", f"no AMX, {native}; bf16 GEMM measured {ratio:.2f}x fp32: fp32 is as fast and exact"


__all__ = ["FEATURES", "CpuFeatures", "bf16_speedup", "pick_dtype", "read_cpu_flags"]
