"""int8 linears on plain int8 tensors and `torch._int_mm`.

torch's quantized dtypes (qint8, `quantize_per_channel`, `torch.ao.quantization.quantize_dynamic` and the
fbgemm packed params behind them) are deprecated from torch 2.13 (pytorch/pytorch#184982), which points to
plain int8 tensors with their scales kept by the model code, as torchao does. This is that scheme:

- weights: int8 per output channel, symmetric, scale = max|w| / 127.5 (what `per_channel_dynamic_qconfig`
  computes), stored once as [in, out] for `torch._int_mm`; 7 bits on CPUs without VNNI, where the
  full range saturates (`full_range`);
- activations: int8 per token (row), symmetric, the full 8 bits (fbgemm's were per tensor, asymmetric);
- the product: `torch._int_mm` (oneDNN's int8 GEMM: VNNI, AMX where the CPU has it), rescaled in fp32.

On the 0.6B it scores as the fbgemm path did: the same drift from fp32 (1.5e-2) at 0.98-1.00x its speed
(benchmarks/int8_paths.py, benchmarks/README.md).

The per-token quantise and the rescale are passes over memory that cost as much as the GEMM when run as
separate eager ops (measured: a [2048, 3072] input took longer to quantise than to multiply). Inductor
fuses each into one vectorised loop (compiled once per process, dynamic shapes, cached on disk like
rerankd.models.fused); where it cannot compile (no C++ compiler) the same math runs eagerly, with the same
values. torchao's own int8 config (0.18) measured 0.71x the fbgemm path on CPU (its quantise runs as
separate ops), hence not torchao itself.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import torch

from rerankd.models.kernels import fused_mode

log = logging.getLogger("rerankd.models")

_EPS = torch.finfo(torch.float32).eps


@functools.cache
def full_range() -> bool:
    """Whether `torch._int_mm` sums full-range int8 products exactly here. Without VNNI (and AMX) oneDNN
    multiplies u8 x s8 pairs into int16 (vpmaddubsw), which saturates: measured inexact under
    ONEDNN_MAX_CPU_ISA=AVX2 and AVX512_CORE. Asked of the kernel itself once, at its worst case, so that
    an ISA cap set by the user counts too."""
    k = 64
    a = torch.full((2, k), 127, dtype=torch.int8)  # oneDNN adds 128 to s8 inputs: 127 -> 255
    b = torch.full((k, 2), 127, dtype=torch.int8)
    b[:, 1] = -128
    expected = torch.tensor([[k * 127 * 127, -k * 127 * 128]] * 2, dtype=torch.int32)
    return torch.equal(torch._int_mm(a, b), expected)


def _symmetric(x: torch.Tensor, lo: int = -128, hi: int = 127) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] as int8 in [lo, hi] with one fp32 scale per row ([M, 1]): max|row| / ((hi - lo) / 2),
    what torch's symmetric int8 observers compute (127.5 for the full range)."""
    x = x.float()
    scale = (x.abs().amax(dim=-1, keepdim=True) / ((hi - lo) / 2)).clamp(min=_EPS)
    return torch.round(x / scale).clamp(lo, hi).to(torch.int8), scale


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 [in, out] (contiguous, for `torch._int_mm`) and the fp32 scale per output channel. In 7 bits
    ([-64, 63]) where the full range would saturate (`full_range`): then every pair's sum fits int16, as
    oneDNN's notes on int8 without VNNI advise (fbgemm did the same by 7-bit activations)."""
    q, scale = _symmetric(weight.detach()) if full_range() else _symmetric(weight.detach(), -64, 63)
    return q.t().contiguous(), scale.squeeze(1)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] as int8 with one fp32 scale per row ([M, 1])."""
    return _symmetric(x)


def rescale(
    acc: torch.Tensor, row: torch.Tensor, col: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """The int32 product back to real values: acc x row scale x column scale (+ bias), in fp32."""
    y = acc.float() * row * col
    if bias is not None:
        y = y + bias
    return y.to(dtype)


class _Ops:
    """`quantize_rows` and `rescale`, compiled where inductor can (CPU, $RERANKD_FUSED not off), eager
    otherwise. One per process: every linear shares the compiled code. Inductor compiles again for a case
    it has not seen (a bias, one row, another dtype); a compile failure at any call, the first or a later
    one, logs once and switches to eager for good (unless the eager call fails too: then the input is at
    fault, not the compiler), and that call is answered eagerly: no request fails on the compiler, and
    the values are the same."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quantize: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = quantize_rows
        self._rescale: Callable[..., torch.Tensor] = rescale
        self.compiled = False
        self._tried = False

    def ensure(self, x: torch.Tensor) -> None:
        """Compile once, for the first input's device and dtype, and warm up the cases a model meets."""
        if self._tried:
            return
        with self._lock:
            if self._tried:
                return
            self._tried = True
            if fused_mode() == "off" or x.device.type != "cpu":
                return
            try:
                self._quantize = torch.compile(quantize_rows, dynamic=True)
                self._rescale = torch.compile(rescale, dynamic=True)
            except Exception as e:  # torch.compile unsupported here (this Python, this build)
                self._quantize, self._rescale = quantize_rows, rescale
                log.warning("int8: torch.compile is not available (%s), eager", e)
                return
            self.compiled = True
        # The layer's scale and bias are ordinary tensors (buffers made at load), the activations are made
        # in the caller's mode (the scorer's inference mode): dynamo guards on that, so the warm-up
        # mirrors it, or real calls compile again. No randn: the user's random state is left alone.
        with torch.inference_mode(False):
            col, biases = torch.ones(8), (None, torch.zeros(8))
        for rows in (3, 1):  # many rows and one (inductor specialises size 1), no bias and a bias
            probe = torch.linspace(-1.0, 1.0, rows * 16).reshape(rows, 16).to(x.dtype)
            _, s = self.quantize(probe)
            for bias in biases:
                self.rescale(torch.zeros(rows, 8, dtype=torch.int32), s, col, bias, x.dtype)

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.compiled:
            try:
                return self._quantize(x)
            except Exception as e:  # no C++ compiler, an inductor bug
                out = quantize_rows(x)  # raises too if the input is at fault: compiling stays on then
                self._fall_back(e)
                return out
        return quantize_rows(x)

    def rescale(
        self,
        acc: torch.Tensor,
        row: torch.Tensor,
        col: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        if self.compiled:
            try:
                return self._rescale(acc, row, col, bias, dtype)
            except Exception as e:
                y = rescale(acc, row, col, bias, dtype)
                self._fall_back(e)
                return y
        return rescale(acc, row, col, bias, dtype)

    def _fall_back(self, e: Exception) -> None:
        with self._lock:
            if self.compiled:
                self.compiled = False
                self._quantize, self._rescale = quantize_rows, rescale
                log.warning("int8: inductor could not compile the quantise/rescale steps (%s), eager", e)


OPS = _Ops()


class Int8Linear(torch.nn.Module):
    """nn.Linear with int8 weights (per output channel) and int8 activations (per token)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        q, scale = quantize_weight(linear.weight)
        self.qweight: torch.Tensor
        self.scale: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        OPS.ensure(x)
        rows = x.reshape(-1, self.in_features)
        q, row_scale = OPS.quantize(rows)
        acc = torch._int_mm(q, self.qweight)
        y = OPS.rescale(acc, row_scale, self.scale, self.bias, x.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 x int8 -> int32"


__all__ = ["OPS", "Int8Linear", "quantize_rows", "quantize_weight", "rescale"]
