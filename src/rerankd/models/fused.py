"""Fusing what is not a GEMM, by torch.compile (inductor's CPU code generation), with eager as fallback.

On an AMX CPU in bf16 the GEMMs are fast and most of the time goes to elementwise work: transformers'
RMSNorm alone (upcast to fp32, pow, mean, rsqrt, mul, downcast, mul: one memory pass each) was 21% of a
forward pass. Inductor turns each norm into one vectorised loop (measured here: 28 ms -> 1.5 ms for a
[32, 293, 1024] bf16 norm, 94 -> 13 ms for the per-head q/k norms) and the MLP's SiLU x up into one.

What is compiled: every RMSNorm module, every MLP module (gate/up/down GEMMs stay oneDNN's; the
SiLU-mul between them fuses), and RoPE (`apply_rotary_pos_emb` of the model's modeling module). These are
pure tensor functions, so the scorer's prefix cache and masks (which the attention module sees) never
enter a compiled graph and cannot break it. `dynamic=True` compiles one graph per input rank, whatever
the batch and sequence lengths; instances of one class share it. Inductor caches its output on disk
($TORCHINDUCTOR_CACHE_DIR), so a second start loads instead of compiling.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from rerankd.models.linear import unpack_linear_weights
from rerankd.models.patching import Undoable

log = logging.getLogger("rerankd.models")

_NORM_CLASSES = ("RMSNorm",)  # class-name suffixes: Qwen3RMSNorm, Qwen2RMSNorm, LlamaRMSNorm, ...
_MLP_CLASSES = ("MLP",)
_ROPE_FN = "apply_rotary_pos_emb"


@dataclass
class CompileResult(Undoable):
    """What `maybe_compile` did: whether the model runs compiled, why, and what it cost."""

    compiled: bool
    reason: str
    seconds: float = 0.0
    modules: int = 0

    def revert(self) -> None:
        """Back to eager (the original forwards and RoPE function)."""
        self._undo_all()
        self.compiled = False


def _targets(model: torch.nn.Module) -> list[torch.nn.Module]:
    out = []
    for m in model.modules():
        name = type(m).__name__
        if name.endswith(_NORM_CLASSES) or name.endswith(_MLP_CLASSES):
            out.append(m)
    return out


def should_compile(device: torch.device, dtype: torch.dtype) -> tuple[bool, str]:
    """`auto`: compile on CPU in bf16 (where elementwise work dominates); fp32 is GEMM-bound (nothing to
    win) and CUDA is not measured yet."""
    if device.type != "cpu":
        return False, f"{device.type}: compiled path not measured there, eager"
    if dtype != torch.bfloat16:
        return False, f"{dtype}: GEMM-bound, fusing the rest buys little, eager"
    return True, "CPU bf16: norms, MLP and RoPE compiled (inductor)"


def compile_modules(model: torch.nn.Module, rope: bool = True) -> CompileResult:
    """Replace the norms' and MLPs' forwards (and RoPE) by compiled ones, in place; no warm-up."""
    result = CompileResult(compiled=True, reason="compiled")
    for m in _targets(model):
        m.forward = torch.compile(m.forward, dynamic=True)
        result._undo.append(functools.partial(delattr, m, "forward"))
        result.modules += 1
    if rope:
        for mod in {type(m).__module__ for m in model.modules()}:
            module = sys.modules.get(mod)
            fn = getattr(module, _ROPE_FN, None)
            if module is None or fn is None or getattr(fn, "_rerankd_compiled", False):
                continue
            compiled: Any = torch.compile(fn, dynamic=True)
            compiled._rerankd_compiled = True
            setattr(module, _ROPE_FN, compiled)
            result._undo.append(functools.partial(setattr, module, _ROPE_FN, fn))
    return result


def _warm_up(model: torch.nn.Module) -> None:
    """Compile every graph now (under inference_mode, as the scorer runs), not at the first request:
    each target module once at a small size, plus RoPE through one tiny forward of the backbone."""
    backbone: Any = getattr(model, "base_model", model)
    with torch.inference_mode():
        # Batch 1 and batch > 1 are separate graphs (dynamic shapes specialise on size 1).
        for batch, length in ((2, 4), (1, 3)):
            ids = torch.full((batch, length), 1, dtype=torch.long, device=_device(model))
            backbone(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def maybe_compile(
    model: torch.nn.Module, mode: str = "auto", *, dtype: torch.dtype | None = None
) -> CompileResult:
    """Compile per `mode` ("auto" | "on" | "off"), warm up, and fall back to eager on any failure (no C++
    compiler, an inductor bug): the model always ends up runnable. Logs what it did and why."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"compile mode {mode!r}: use auto, on or off")
    device = _device(model)
    dtype = dtype or next(model.parameters()).dtype
    if mode == "off":
        return CompileResult(False, "compile off")
    if mode == "auto":
        ok, why = should_compile(device, dtype)
        if not ok:
            return CompileResult(False, why)
    if not _targets(model):
        return CompileResult(False, f"{type(model).__name__}: no RMSNorm/MLP modules to compile, eager")
    unpack_linear_weights(model)  # prepacked (opaque oneDNN) weights do not trace; plain ones do
    t = time.perf_counter()
    result = compile_modules(model)
    try:
        _warm_up(model)
    except Exception as e:  # any compiler failure means: run eager
        result.revert()
        result.reason = f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}), eager"
        log.warning("%s", result.reason)
        return result
    result.seconds = time.perf_counter() - t
    result.reason = f"{should_compile(device, dtype)[1] if mode == 'auto' else 'compile on'}"
    log.info("compiled %d modules + RoPE in %.1f s (%s)", result.modules, result.seconds, result.reason)
    return result


__all__ = ["CompileResult", "compile_modules", "maybe_compile", "should_compile"]
