"""bf16 linear layers with oneDNN-prepacked weights (CPU), patched in at load.

torch's eager bf16 `F.linear` on CPU hands oneDNN the weight in plain [out, in] layout, and oneDNN
reorders it into its blocked layout on every call. `torch.ops.mkldnn._reorder_linear_weight` does that
reorder once (the op inductor's freezing pass inserts for bf16 linears) and
`torch.ops.mkldnn._linear_pointwise` multiplies by the packed copy. The packed tensor REPLACES the plain
weight (the nn.Linear module is swapped for a `PackedLinear` holding only the packed copy), so memory
does not grow; layers are packed one at a time, so the load peaks at one extra weight matrix.

What is packed: bias-free `nn.Linear` layers with bf16 weights on CPU inside the backbone
(`model.base_model`): the decoder's q/k/v/o and gate/up/down projections. Left alone: fp32 (MKL's packed
sgemm measured no faster and keeps the plain weight beside a larger packed one), int8 (`Int8Linear` is
no nn.Linear), linears with a bias (oneDNN rounds the bias add differently in bf16, 1 ulp off eager),
the LM head (the yes/no rows are read from its weight) and anything outside the backbone. The results
are bit-equal to eager `F.linear` (same oneDNN kernel, the reorder is exact).

$RERANKD_PACK=auto (default: on where it applies) | on | off; RERANKD_FUSED=off also leaves it off,
so that switch still gives transformers' untouched eager path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rerankd.models.patching import Undoable

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")


class PackedLinear(torch.nn.Module):
    """A bias-free nn.Linear whose weight lives only as oneDNN's packed (opaque, `torch._mkldnn`
    layout) bf16 tensor. Inference only: the packed tensor has no storage, so no autograd, no
    state-dict round trip, no deepcopy."""

    weight: torch.Tensor

    def __init__(self, linear: torch.nn.Linear, batch_hint: int | None = None) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), batch_hint)
        self.register_buffer("weight", packed, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, None, "none", [], "")

    def unpack(self) -> torch.nn.Linear:
        """The plain nn.Linear again (the packed layout converts back exactly)."""
        dense = self.weight.to_dense()
        linear = torch.nn.Linear(self.in_features, self.out_features, bias=False, device="meta")
        linear.weight = torch.nn.Parameter(dense, requires_grad=False)
        return linear

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias=False, packed=oneDNN bf16"


@dataclass
class PackResult(Undoable):
    """What `pack_linear_weights` did; `revert()` restores plain nn.Linear layers."""

    applied: bool
    reason: str
    packed: int = 0

    def revert(self) -> None:
        self._undo_all()
        self.applied = False
        self.packed = 0


def _mode(mode: str | None) -> str:
    if mode is None:
        if os.environ.get("RERANKD_FUSED", "auto").strip().lower() == "off":
            return "off"
        mode = os.environ.get("RERANKD_PACK", "auto")
    value = mode.strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"RERANKD_PACK={value!r}: use auto, on or off")
    return value


def _packable(m: torch.nn.Module) -> bool:
    return (
        type(m) is torch.nn.Linear
        and m.bias is None
        and m.weight.dtype == torch.bfloat16
        and m.weight.device.type == "cpu"
    )


def _children_where(
    model: torch.nn.Module, pick: Callable[[torch.nn.Module], bool]
) -> list[tuple[torch.nn.Module, str]]:
    # (parent, name) pairs, not the modules: a list of them would keep every plain weight alive to the end.
    return [
        (parent, name) for parent in model.modules() for name, child in parent.named_children() if pick(child)
    ]


def supported() -> bool:
    """oneDNN present with bf16 support on this CPU (avx512_bf16, AMX, or its emulation on avx512)."""
    return bool(
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def pack_linear_weights(model: torch.nn.Module, mode: str | None = None) -> PackResult:
    """Swap the backbone's packable bf16 linears for `PackedLinear`, in place (mode None:
    $RERANKD_PACK, default auto). The plain weight is dropped as each layer is packed."""
    chosen = _mode(mode)
    if chosen == "off":
        return PackResult(False, "prepacked linears off")
    if not supported():
        return PackResult(False, "oneDNN bf16 linear not available on this CPU/torch")
    targets = _children_where(getattr(model, "base_model", model), _packable)
    if not targets:
        return PackResult(False, "no bias-free bf16 CPU linear layers in the backbone")
    result = PackResult(True, "bf16 linear weights prepacked for oneDNN")
    for parent, name in targets:
        setattr(parent, name, PackedLinear(getattr(parent, name)))  # the plain weight is freed here

        def undo(parent: torch.nn.Module = parent, name: str = name) -> None:
            current = getattr(parent, name)
            if isinstance(current, PackedLinear):
                setattr(parent, name, current.unpack())

        result._undo.append(undo)
        result.packed += 1
    _trim_heap()
    log.info("prepacked %d bf16 linear layers for oneDNN", result.packed)
    return result


def _trim_heap() -> None:
    """Hand the freed plain weights back to the OS. glibc keeps freed 0.5-6 MiB blocks that came from
    its heap resident (measured: +94 MiB RSS for 99 MiB of packed weights, gone after malloc_trim);
    other allocators (jemalloc under `rerankd serve`) return memory themselves. Best effort."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim(0)
    except OSError:
        pass


def unpack_linear_weights(model: torch.nn.Module) -> int:
    """Swap every `PackedLinear` in `model` back for a plain nn.Linear (before torch.compile: inductor
    cannot trace oneDNN's opaque tensors, and its own freezing pass packs). Returns how many."""
    targets = _children_where(model, lambda m: isinstance(m, PackedLinear))
    for parent, name in targets:
        setattr(parent, name, getattr(parent, name).unpack())
    return len(targets)
