"""Precision: the dtypes a model may run in and how a name resolves to one, the tensor-by-tensor
conversion that never holds two copies of the weights, and int8 dynamic quantisation (CPU only,
rerankd.models.int8)."""

from __future__ import annotations

import os
from typing import Any

import torch

from rerankd.config import DTYPE_CHOICES as _NAMES
from rerankd.errors import ModelLoadError
from rerankd.models.int8 import Int8Linear

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# int8: dynamic quantisation of the backbone's nn.Linear layers (weights int8 per output channel,
# activations quantised per token; rerankd.models.int8), CPU only. The model is loaded in fp32 first; embeddings, norms,
# attention and the two yes/no rows stay fp32.
INT8 = ("int8", "qint8")
DTYPE_CHOICES = ", ".join(_NAMES[:-1]) + " or " + _NAMES[-1]


class _MappedFiles:
    """Address ranges of this process's memory-mapped safetensors files (from /proc/self/maps).

    Weights loaded in their stored dtype live in these mappings, unread pages cost no memory. After a
    tensor has been converted (bf16) or quantised (int8), `release` tells the kernel to drop its pages
    from this process (madvise MADV_DONTNEED), so the fp32 source never sits in memory next to its
    converted copy. Only mappings of safetensors files are touched, only whole pages inside a released
    tensor, and only after its converted copy exists: a later read of those pages would fault them back
    in from the file (weights are never written in place, so the file holds the same values).
    """

    MADV_DONTNEED = 4

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self._madvise: Any = None
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    if len(parts) == 6 and parts[5].strip().endswith(".safetensors"):
                        lo, hi = (int(x, 16) for x in parts[0].split("-"))
                        self.ranges.append((lo, hi))
            if self.ranges:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                self._madvise = libc.madvise
        except (OSError, AttributeError):
            self.ranges = []

    def release(self, t: torch.Tensor) -> None:
        if not self.ranges or self._madvise is None or t.device.type != "cpu":
            return
        start = t.data_ptr()
        end = start + t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        lo, hi = -(-start // page) * page, end // page * page  # whole pages inside the tensor only
        if hi > lo and any(a <= lo and hi <= b for a, b in self.ranges):
            self._madvise(lo, hi - lo, self.MADV_DONTNEED)


def convert_in_place(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast floating-point parameters to `dtype` one at a time, releasing each mapped source at once:
    peak memory is the converted model plus one tensor, not both models."""
    mapped = _MappedFiles()
    for p in model.parameters():  # tied parameters come once
        if p.is_floating_point() and p.dtype != dtype:
            old = p.data
            p.data = old.to(dtype)
            mapped.release(old)
            del old


def int8_advice() -> str:
    """Why int8 is (or is not) worth it on this CPU, from measurements (benchmarks/README.md): where the
    CPU multiplies bf16 natively, int8 is slower (AMX) or at most a third faster (avx512_bf16 alone) and
    drifts ~3x more."""
    from rerankd.models.cpu import CpuFeatures

    cpu = CpuFeatures.detect()
    if cpu.amx:
        return (
            "int8 is slower than bfloat16 on this CPU (AMX: its int8 GEMM peaks at 0.46x bf16's; the "
            "earlier fbgemm int8 path measured 0.46x bf16 on the whole model) and its scores drift ~3x "
            "more (~2e-2 vs fp32): use dtype bfloat16 or auto"
        )
    if cpu.avx512_bf16:
        return (
            "int8 on this CPU (avx512_bf16, no AMX) measured 1.0x bf16 per layer and 1.1-1.3x on a whole 0.6B "
            "model, but its scores drift 1-2e-2 vs fp32 (bf16: ~5e-3): use dtype bfloat16 or auto (the fastest "
            "path within 0.01 of fp32) unless that drift is acceptable"
        )
    return (
        "int8 (int8 weights and activations, torch._int_mm): the fastest CPU path where bf16 is not "
        "native (the earlier fbgemm int8 path measured 1.8x fp32 there), scores drift ~2e-2 vs fp32; "
        "float32 is the exact mode"
    )


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Every nn.Linear inside `module` as an int8 one (rerankd.models.int8: int8 weights per channel,
    activations per token, `torch._int_mm`), in place, one layer at a time (each fp32 weight is released
    as soon as its int8 copy exists)."""
    mapped = _MappedFiles()

    def walk(m: torch.nn.Module) -> None:
        for name, child in list(m.named_children()):
            if isinstance(child, torch.nn.Linear):
                weight = child.weight.data
                setattr(m, name, Int8Linear(child))
                mapped.release(weight)
                del weight
            else:
                walk(child)

    walk(module)
    return module


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype the weights load in (int8 loads in fp32, then quantises)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return _DTYPES[auto_dtype(device)[0]]
    if dtype in INT8:
        if device.type != "cpu":
            raise ModelLoadError("dtype int8 (dynamic quantisation) runs on CPU only; use bfloat16 on GPU")
        return torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use {DTYPE_CHOICES}")
    return _DTYPES[dtype]


def auto_dtype(device: torch.device) -> tuple[str, str]:
    """What `dtype="auto"` loads on this hardware, and why (models/cpu.py: bf16 on AMX, on CPUs whose
    bf16 GEMM beats fp32, and on CUDA; fp32, the exact mode, otherwise)."""
    from rerankd.models.cpu import pick_dtype

    return pick_dtype(device)


def stored_dtype(config: Any) -> torch.dtype | None:
    """The dtype the checkpoint says its weights are stored in, if it says."""
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, torch.dtype):
        return value if value.is_floating_point else None
    if isinstance(value, str) and value in _DTYPES:
        return _DTYPES[value]
    return None


def weight_bytes(module: torch.nn.Module) -> int:
    """Bytes the module's weights take: parameters and buffers (int8 weights and scales are buffers,
    rerankd.models.int8), a tensor shared by several names (tied embeddings) counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def add(t: torch.Tensor) -> None:
        nonlocal total
        if t.is_mkldnn:  # no storage to ask (oneDNN-packed weights: models.linear)
            size = t.numel() * t.element_size()
            key = (id(t), size)
        else:
            size = t.untyped_storage().nbytes()
            key = (t.untyped_storage().data_ptr(), size)
        if key not in seen:
            seen.add(key)
            total += size

    for value in module.state_dict(keep_vars=True).values():
        for t in value if isinstance(value, tuple) else (value,):
            if isinstance(t, torch.Tensor):
                add(t)
    return total
