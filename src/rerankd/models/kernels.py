"""Eager fusion of what is not a GEMM, without a compiler: module patches applied at load, on by default.

transformers' decoder layers spend a pass over memory (and a fresh allocation) on every elementwise step:
RMSNorm upcasts, squares, means, multiplies, downcasts and multiplies again; RoPE builds `rotate_half`
by negating and concatenating; the MLP allocates SiLU's output and the product; each residual add
allocates the sum. The replacements below compute the same values with fewer temporaries:

- RMSNorm: the math in fp32 as transformers does it (bf16: one fp32 copy, scaled in place, one cast
  down; fp32: the scaled tensor is the only full-size allocation), the sum of squares by
  `torch.linalg.vecdot` (no squared temporary kept), the weight multiplied in place. Gemma's
  `(1 + w)` variant multiplies in fp32 before the cast, as Gemma does. (`torch.nn.functional.rms_norm`
  was measured and is not used: on CPU in torch 2.13 it is composite, no faster than transformers'
  code in fp32 and slower in bf16.)
- SiLU·mul: the activation in place on the gate projection's output, then the up projection's output
  multiplied into it.
- RoPE: `q * cos` once, then each half's rotated term added into its half in place: one full-size and
  two half-size allocations per tensor instead of four and one, the same roundings. Patched per
  attention module (a copy of its forward that resolves the name to ours), never module-wide: other
  models of the family keep transformers' function. cos/sin are already computed once per forward
  pass and shared by every layer (transformers passes `position_embeddings`): nothing to precompute.
- Residual adds: the attention's and the MLP's outputs are fresh tensors (their output projections'),
  so the residual is added into them in place (Qwen2/Qwen3/Llama decoder layers).
- Attention: the same copy of the attention forward resolves "sdpa" to `rerankd.models.attention`'s
  causal attention by query chunks (each chunk against only the keys it can see; GQA without
  `repeat_kv`); it hands every case it does not cover to transformers' SDPA. Not bit-equal (shorter
  reductions): attention outputs within ~5e-7 and scores within ~1e-6 in fp32 (tests bound them at
  1e-5), one bf16 rounding step in bf16: the one exception to the rule below.

Each other replacement rounds where transformers' code rounds, so with the attention left to transformers
(passes of fewer than 128 keys, or any case it hands back) scores equal transformers' path bit for bit
in fp32 and bf16 on the models tested (tests/integration/test_kernels.py). Only classes known to
have these semantics are patched; anything else keeps transformers' code. $RERANKD_FUSED=off loads
the eager transformers path unchanged (the reference in tests), `on` patches on every device, `auto`
(the default) on CPU only (the GPU path is unmeasured).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from rerankd.models.attention import sdpa_attention
from rerankd.models.patching import Undoable

log = logging.getLogger("rerankd.models")

# Norms computing `w * (x / rms(x)).to(dtype)` (fp32 math) and those computing `((x / rms) * (1 + w))`
# in fp32 before the cast (Gemma's).
_LLAMA_NORMS = frozenset({"Qwen2RMSNorm", "Qwen3RMSNorm", "LlamaRMSNorm", "MistralRMSNorm"})
_GEMMA_NORMS = frozenset({"GemmaRMSNorm", "Gemma2RMSNorm"})
# MLPs computing down(act(gate(x)) * up(x)).
_GATED_MLPS = frozenset({"Qwen2MLP", "Qwen3MLP", "LlamaMLP", "MistralMLP", "GemmaMLP", "Gemma2MLP"})
# Decoder layers of the pre-norm form x + attn(norm(x)), then x + mlp(norm(x)).
_PRE_NORM_LAYERS = frozenset({"Qwen2DecoderLayer", "Qwen3DecoderLayer", "LlamaDecoderLayer"})
# Modeling modules whose attention calls the module-level `apply_rotary_pos_emb` (half-split RoPE).
_ROPE_MODULES = frozenset(
    {
        "transformers.models.qwen2.modeling_qwen2",
        "transformers.models.qwen3.modeling_qwen3",
        "transformers.models.llama.modeling_llama",
        "transformers.models.gemma.modeling_gemma",
        "transformers.models.gemma2.modeling_gemma2",
    }
)
MODES = ("auto", "on", "off")


def _inv_rms(h: torch.Tensor, eps: float) -> torch.Tensor:
    """1 / sqrt(mean(h^2) + eps) over the last dim of fp32 `h`, as a [..., 1] tensor."""
    # vecdot sums the squares without a squared temporary, in the order mean(pow(2)) does (bit-equal).
    return torch.linalg.vecdot(h, h).unsqueeze_(-1).div_(h.shape[-1]).add_(eps).rsqrt_()


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' Llama/Qwen RMSNorm: `weight * (x / rms(x)).to(x.dtype)`, the normalisation in fp32."""
    h = x.float()  # bf16: the fp32 copy; fp32: x itself, which is the residual and stays untouched
    inv = _inv_rms(h, eps)
    h = x * inv if h is x else h.mul_(inv)
    out = h.to(x.dtype)
    return out.mul_(weight) if out.dtype == weight.dtype else weight * out


def rms_norm_offset(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma's RMSNorm: `((x / rms(x)) * (1 + weight)).to(x.dtype)`, all in fp32 before the cast."""
    h = x.to(torch.float32, copy=True)
    h.mul_(_inv_rms(h, eps)).mul_(1.0 + weight.float())
    return h.to(x.dtype)


def _norm_forward(module: Any, x: torch.Tensor) -> torch.Tensor:
    return rms_norm(x, module.weight, module.variance_epsilon)


def _gemma_norm_forward(module: Any, x: torch.Tensor) -> torch.Tensor:
    return rms_norm_offset(x, module.weight, module.eps)


def _mlp_forward(module: Any, x: torch.Tensor) -> torch.Tensor:
    gate = module.gate_proj(x)
    # Gemma's tanh GELU has no in-place form; its product still goes in place.
    silu = isinstance(module.act_fn, torch.nn.SiLU)
    gate = F.silu(gate, inplace=True) if silu else module.act_fn(gate)
    return module.down_proj(gate.mul_(module.up_proj(x)))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, with rotate_half(x) = cat(-x2, x1): the same roundings (so the
    same values) in one full-size and two half-size allocations instead of four and one."""
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].sub_(x[..., half:] * sin[..., :half])
    out[..., half:].add_(x[..., :half] * sin[..., half:])
    return out


def apply_rotary_pos_emb(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for transformers' half-split `apply_rotary_pos_emb` (same signature, same values)."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return _rotate(q, cos, sin), _rotate(k, cos, sin)


def _layer_forward(module: Any, *args: Any, original: Callable[..., Any], **kwargs: Any) -> Any:
    """A pre-norm decoder layer with its two residual adds in place (keyword calls, as transformers'
    models make them; anything else goes to the original forward)."""
    hidden = kwargs.pop("hidden_states", None) if not args else args[0]
    if len(args) > 1 or hidden is None or torch.is_grad_enabled():
        if hidden is not None and not args:
            kwargs["hidden_states"] = hidden
        return original(*args, **kwargs)
    h, _ = module.self_attn(hidden_states=module.input_layernorm(hidden), **kwargs)
    h = h.add_(hidden) if h is not hidden else h + hidden  # o_proj's output: a fresh tensor
    m = module.mlp(module.post_attention_layernorm(h))
    return m.add_(h) if m is not h else m + h


_FAST_ATTENTION: dict[str, Callable[..., Any] | None] = {}


def _attention_with_rope(key: str, cls: Any) -> Callable[..., Any] | None:
    """One copy per attention class (`key` names it)."""
    if key not in _FAST_ATTENTION:
        _FAST_ATTENTION[key] = _build_attention_with_rope(cls)
    return _FAST_ATTENTION[key]


class _Attentions:
    """Stands in for transformers' `ALL_ATTENTION_FUNCTIONS` inside our copy of an attention forward:
    "sdpa" resolves to the chunked causal attention (models/attention.py), which hands anything it does
    not cover back to transformers' SDPA; every other implementation (eager, the batch-invariant one,
    flash) is transformers' registry's."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def get_interface(self, name: str, default: Callable[..., Any]) -> Callable[..., Any]:
        if name == "sdpa":
            return sdpa_attention
        return self._registry.get_interface(name, default)

    def __getitem__(self, name: str) -> Callable[..., Any]:  # transformers releases that index the registry
        return sdpa_attention if name == "sdpa" else self._registry[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)


def _build_attention_with_rope(cls: Any) -> Callable[..., Any] | None:
    """`cls.forward` (undecorated) with its `apply_rotary_pos_emb` resolved to ours, and its "sdpa"
    attention to the chunked one: a copy of the function with its own globals, so the modeling module
    itself (and any other model using it, such as the reference in tests) keeps transformers' RoPE and
    attention. If the module's RoPE function is replaced later (the compiled path swaps in a compiled
    one), that replacement wins."""
    fn = inspect.unwrap(cls.forward)
    module = sys.modules.get(fn.__module__)
    original = fn.__globals__.get("apply_rotary_pos_emb")
    if module is None or original is None or "apply_rotary_pos_emb" not in fn.__code__.co_names:
        return None

    def rope(*args: Any, **kwargs: Any) -> Any:
        current = getattr(module, "apply_rotary_pos_emb", original)
        return (apply_rotary_pos_emb if current is original else current)(*args, **kwargs)

    scope = dict(fn.__globals__, apply_rotary_pos_emb=rope)
    registry = fn.__globals__.get("ALL_ATTENTION_FUNCTIONS")
    if registry is not None and "ALL_ATTENTION_FUNCTIONS" in fn.__code__.co_names:
        scope["ALL_ATTENTION_FUNCTIONS"] = _Attentions(registry)
    fast = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    fast.__kwdefaults__ = fn.__kwdefaults__
    fast._rerankd_attention = isinstance(scope.get("ALL_ATTENTION_FUNCTIONS"), _Attentions)  # type: ignore[attr-defined]
    return fast


def _attention_forward(
    module: Any, *args: Any, fast: Callable[..., Any], original: Callable[..., Any], **kwargs: Any
) -> Any:
    if "past_key_values" in kwargs:  # the deprecated name: transformers' wrapper renames it
        return original(*args, **kwargs)
    return fast(module, *args, **kwargs)


@dataclass
class KernelsResult(Undoable):
    """What `apply_kernels` patched (counts per kind) and why, with the undo."""

    applied: bool
    reason: str
    patched: dict[str, int] = field(default_factory=dict)

    def revert(self) -> None:
        """Back to transformers' forwards (and RoPE functions)."""
        self._undo_all()
        self.applied = False


def _mode(mode: str | None) -> str:
    value = (mode if mode is not None else os.environ.get("RERANKD_FUSED", "auto")).strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"RERANKD_FUSED={value!r}: use auto, on or off")
    return value


def fused_mode() -> str:
    """$RERANKD_FUSED, checked: "auto" (the default), "on" or "off" (ValueError otherwise)."""
    return _mode(None)


def _patch_forward(m: torch.nn.Module, fn: Callable[..., Any], result: KernelsResult, kind: str) -> None:
    if "forward" in vars(m):  # already patched (by us or another wrapper): leave it
        return
    setattr(m, "forward", functools.partial(fn, m))  # noqa: B010 (an instance attribute, not the class's)
    result._undo.append(functools.partial(delattr, m, "forward"))
    result.patched[kind] = result.patched.get(kind, 0) + 1


def apply_kernels(model: torch.nn.Module, mode: str | None = None) -> KernelsResult:
    """Patch the known norms, MLPs, decoder layers and RoPE of `model` in place, per `mode` (None:
    $RERANKD_FUSED, default auto). Returns what it did; `revert()` restores the eager path."""
    chosen = _mode(mode)
    if chosen == "off":
        return KernelsResult(False, "RERANKD_FUSED=off: transformers' eager path")
    params = next(model.parameters(), None)
    device = params.device if params is not None else torch.device("cpu")
    if chosen == "auto" and device.type != "cpu":
        return KernelsResult(
            False, f"{device.type}: fused eager kernels not measured there, transformers' path"
        )
    result = KernelsResult(
        True, "fused eager kernels (RMSNorm, SiLU-mul, RoPE, residual adds, chunked causal attention)"
    )
    for m in model.modules():
        name = type(m).__name__
        if name in _LLAMA_NORMS and hasattr(m, "variance_epsilon"):
            _patch_forward(m, _norm_forward, result, "rmsnorm")
        elif name in _GEMMA_NORMS and hasattr(m, "eps"):
            _patch_forward(m, _gemma_norm_forward, result, "rmsnorm")
        elif name in _GATED_MLPS and all(
            hasattr(m, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn")
        ):
            _patch_forward(m, _mlp_forward, result, "mlp")
        elif name.endswith("Attention") and type(m).__module__ in _ROPE_MODULES:
            count = result.patched.get("rope", 0)
            fast = _attention_with_rope(type(m).__module__ + ":" + type(m).__qualname__, type(m))
            if fast is not None:
                _patch_forward(
                    m, functools.partial(_attention_forward, fast=fast, original=m.forward), result, "rope"
                )
                if getattr(fast, "_rerankd_attention", False) and result.patched.get("rope", 0) > count:
                    result.patched["attention"] = result.patched.get("attention", 0) + 1
        elif name in _PRE_NORM_LAYERS:
            _patch_forward(m, functools.partial(_layer_forward, original=m.forward), result, "layer")
    if not result.patched:
        return KernelsResult(
            False, f"{type(model).__name__}: no known norm/MLP/layer to fuse, transformers' path"
        )
    log.info("fused eager kernels: %s", ", ".join(f"{k} x{v}" for k, v in sorted(result.patched.items())))
    return result


__all__ = [
    "MODES",
    "KernelsResult",
    "apply_kernels",
    "apply_rotary_pos_emb",
    "rms_norm",
    "rms_norm_offset",
]
