"""int8 on plain int8 tensors (rerankd.models.int8): the arithmetic is the stated scheme exactly, the
compiled quantise/rescale steps give the eager values, a failed compile falls back to eager, and no
deprecated quantized dtype (qint8, torch.ao) is touched on the way."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from rerankd.models import int8
from rerankd.models.int8 import Int8Linear, quantize_rows, quantize_weight


def _linear(k: int = 64, n: int = 48, bias: bool = False, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    lin = torch.nn.Linear(k, n, bias=bias)
    lin.weight.data.normal_(0, 0.05)
    lin.weight.data[3] = 0  # an all-zero channel: its scale is clamped, not 0 (no division by zero)
    return lin


def test_the_product_is_the_stated_scheme_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8, "OPS", int8._Ops())
    lin = _linear(bias=True)
    x = torch.randn(2, 5, 64)
    x[0, 1] = 0  # an all-zero token
    y = Int8Linear(lin)(x)
    # By hand: per-channel symmetric weights, per-token symmetric activations, int32 accumulation.
    w = lin.weight.detach()
    lo, hi = (-128, 127) if int8.full_range() else (-64, 63)  # 7-bit weights where VNNI is missing
    ws = (w.abs().amax(dim=1) / ((hi - lo) / 2)).clamp(min=torch.finfo(torch.float32).eps)
    wq = torch.round(w / ws[:, None]).clamp(lo, hi)
    rows = x.reshape(-1, 64)
    xs = (rows.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=torch.finfo(torch.float32).eps)
    xq = torch.round(rows / xs).clamp(-128, 127)
    acc = (xq.double() @ wq.double().t()).float()  # exact: |sum| < 2^24 here
    expected = (acc * xs * ws + lin.bias.detach()).reshape(2, 5, 48)
    assert torch.equal(y, expected)
    assert y.shape == (2, 5, 48) and not torch.isnan(y).any()
    # ... and close to the float product (8 bits a side).
    ref = lin(x)
    assert (y - ref).abs().max() <= 0.02 * ref.abs().max()


def test_compiled_steps_equal_eager_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    ops = int8._Ops()
    monkeypatch.setattr(int8, "OPS", ops)
    x = torch.randn(7, 64)
    eager = Int8Linear(_linear())
    expected_q, expected_s = quantize_rows(x)
    y_compiled = eager(x)
    if not ops.compiled:
        pytest.skip("inductor could not compile here (no C++ compiler): the eager path ran")
    q, s = ops.quantize(x)
    assert torch.equal(q, expected_q) and torch.equal(s, expected_s)
    monkeypatch.setattr(int8, "OPS", int8._Ops())
    monkeypatch.setenv("RERANKD_FUSED", "off")  # eager: the same values
    assert torch.equal(eager(x), y_compiled)


@pytest.mark.parametrize("where", ["torch.compile", "a later call"])
def test_a_compile_failure_falls_back_to_eager(
    where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """torch.compile itself failing, or a compiled function failing when first called for a case it has
    not seen (inductor compiles lazily: here, the first call with a bias): eager from then on, the call
    itself answered, the same values."""
    ops = int8._Ops()
    monkeypatch.setattr(int8, "OPS", ops)
    calls = {"n": 0}

    def fake_compile(fn: Any, **kwargs: Any) -> Any:
        if where == "torch.compile":
            raise RuntimeError("no C++ compiler")

        def compiled(*args: Any) -> Any:
            calls["n"] += 1
            if fn is int8.rescale and args[3] is not None:  # the bias case fails to compile
                raise RuntimeError("inductor: C++ compile error")
            return fn(*args)

        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    lin = _linear(bias=True)
    x = torch.randn(4, 64)
    with caplog.at_level("WARNING", logger="rerankd.models"):
        y = Int8Linear(lin)(x)
        again = Int8Linear(lin)(x)
    assert not ops.compiled and caplog.text.count("eager") == 1  # logged once
    assert where == "torch.compile" or calls["n"] > 0  # the compiled path really ran first
    q, wq = quantize_rows(x), quantize_weight(lin.weight)
    expected = torch._int_mm(q[0], wq[0]).float() * q[1] * wq[1] + lin.bias.detach()
    assert torch.equal(y, expected) and torch.equal(again, expected)


def test_no_deprecated_quantized_dtype_on_the_way(qwen3_dir: Path) -> None:
    from rerankd import Reranker

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rr = Reranker.from_pretrained(str(qwen3_dir), device="cpu", dtype="int8")
        scores = rr.score("what is int8?", ["eight bits", "a banana"])
    deprecated = [str(w.message) for w in caught if "deprecated" in str(w.message).lower()]
    assert not [m for m in deprecated if "quantiz" in m or "qint8" in m], deprecated
    assert len(scores) == 2 and all(0 < s < 1 for s in scores)
    buffers = {b.dtype for b in rr.scorer.model.base_model.buffers()}  # type: ignore[attr-defined]
    assert torch.int8 in buffers and not {torch.qint8, torch.quint8} & buffers


@pytest.mark.parametrize("isa", ["AVX2", "AVX512_CORE"])
def test_without_vnni_the_weights_take_7_bits_and_nothing_saturates(isa: str) -> None:
    """oneDNN without VNNI sums u8 x s8 pairs in int16: full-range int8 saturates there. Capped to such
    an ISA (ONEDNN_MAX_CPU_ISA, read when oneDNN starts: a fresh process), the probe says so, the
    weights are quantised to [-64, 63], and the layer's int32 product is exact."""
    import os
    import subprocess
    import sys

    code = """
import torch
from rerankd.models import int8
torch.manual_seed(0)
lin = torch.nn.Linear(512, 32, bias=False)
q, _ = int8.quantize_weight(lin.weight)
x = torch.full((4, 512), 127, dtype=torch.int8)  # the worst case for int16 pair sums
exact = torch.equal(torch._int_mm(x, q).long(), x.long() @ q.long())
print(int8.full_range(), int(q.min()), int(q.max()), exact)
"""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    full, lo, hi, exact = out.stdout.split()
    assert full == "False" and int(lo) >= -64 and int(hi) <= 63 and exact == "True", out.stdout


def test_the_warm_up_covers_what_real_calls_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first call (its warm-up compiles many rows and one, with and without a bias, against
    ordinary buffers and inference-mode activations, as the scorer calls), no real call compiles
    again: with recompiles made errors, the compiled path stays on."""
    import torch._dynamo

    ops = int8._Ops()
    monkeypatch.setattr(int8, "OPS", ops)
    plain, biased = Int8Linear(_linear()), Int8Linear(_linear(bias=True, seed=1))
    with torch.inference_mode():
        plain(torch.randn(5, 64))
    if not ops.compiled:
        pytest.skip("inductor could not compile here (no C++ compiler): the eager path ran")
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    with torch.inference_mode():
        for rows in (1, 2, 7, 300):
            plain(torch.randn(rows, 64))
            biased(torch.randn(3, rows, 64))
    assert ops.compiled  # a recompile would have raised, and the fallback would have turned it off
